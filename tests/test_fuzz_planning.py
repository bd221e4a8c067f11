"""Fuzzing the planning inputs: nothing hangs, nothing raises an undocumented error.

Random widget values of the TreeScheduler (random text for the intervals and chunks; huge,
negative, NaN and infinite numbers), random JSON bodies for the web view's plan route and
random arguments of the core API (:class:`TreePlan`, :func:`auto_plan`, the cost model). Each
call must answer within one second (measured here with ``time.perf_counter``; Hypothesis'
own deadline is off because the first call of a test also pays for imports) and may only:

- the node: plan, or refuse with a ``ValueError`` (its message is what ComfyUI shows); its
  ``VALIDATE_INPUTS`` (``boundary_frames`` only): return ``True`` or a message string, and
  ``True`` exactly when the node then accepts that boundary mode;
- the route: answer HTTP 200 or 400 with plain JSON (no NaN), never 500;
- ``TreePlan`` and ``auto_plan``: raise :class:`PlanError`; the cost model: :class:`CostError`.
"""

import json
import math
import time

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nodes.plan_route import plan_response
from nodes.scheduler_node import INTERVAL_CHOICES, LENGTH_MODES, TreeScheduler
from plan_requests import auto as auto_plan
from tempomaster_core.config import DiTConfig
from tempomaster_core.cost import CostError, LevelWork, level_cost
from tempomaster_core.plan import BOUNDARY_MODES, PlanError, TreePlan

LIMIT_S = 1.0
SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# -- value strategies -----------------------------------------------------------------------------

#: numbers at and around the plan's limits, the reference values and the classic bad ones
EDGE_INTS = [0, 1, -1, 2, 4, 5, 9, 16, 109, 436, 480, 832, 1024, 1025, 4096, 4097, 4101, 8192, 24000, 24001,
             10**6, 10**9, 2**31, 2**63, 10**30, -(10**9)]
EDGE_FLOATS = [0.0, -0.0, 0.05, 0.5, 1.0, 24.0, 240.0, 240.5, 600.0, 1e6, 1e308, -1e308, math.inf, -math.inf,
               math.nan, 5e-324]

numbers = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_FLOATS),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
#: pixel frame counts of the valid form 4n+1 (so planning really runs), plus anything
frame_counts = st.one_of(st.integers(min_value=0, max_value=1100).map(lambda n: 4 * n + 1), numbers)
sizes = st.one_of(st.integers(min_value=1, max_value=260).map(lambda n: 16 * n), numbers)
any_text = st.text(max_size=24)
int_lists = st.lists(st.one_of(st.sampled_from(EDGE_INTS), st.integers(min_value=-3, max_value=20)),
                     min_size=0, max_size=12)
list_texts = int_lists.map(lambda xs: ",".join(map(str, xs)))
interval_texts = st.one_of(
    st.sampled_from(["4,2,1", "8,4,2,1", "16,8,4,2,1", "2,1", "4,1", "3,1", "1024,1", "1024,512,1", "2048,1",
                     "1000000000,1", "0", "-4,-2,-1", "4,2,0", "1e9", "inf", "nan", "", " ", "4;2 1",
                     ",".join(str(2**i) for i in range(12, -1, -1))]),
    list_texts,
    any_text,
)
chunk_texts = st.one_of(
    st.sampled_from(["auto", "reference", "", "2,4", "1,2,4", "auto,8", "0,0", "-1,4", "1000000000,4", "12001",
                     "auto,auto", "AUTO", "4096"]),
    list_texts,
    any_text,
)
maybe_none = lambda strategy: st.one_of(st.none(), strategy)  # noqa: E731 - None = a linked input


def _timed(call, *args, **kwargs):
    """``(result, error)`` of ``call`` and a failure when it took longer than :data:`LIMIT_S`."""
    start = time.perf_counter()
    try:
        result, error = call(*args, **kwargs), None
    except Exception as err:  # noqa: BLE001 - the caller checks the type
        result, error = None, err
    elapsed = time.perf_counter() - start
    assert elapsed <= LIMIT_S, f"{getattr(call, '__name__', call)} took {elapsed:.2f} s for {args} {kwargs}"
    return result, error


# warm the imports and caches so the first example is not charged for them
TreeScheduler().plan(blueprint_frames=109, frame_intervals=INTERVAL_CHOICES[0], custom_intervals="4,2,1",
                     chunks="auto", fps=24.0, width=832, height=480)
plan_response(dict(blueprint_frames=109, frame_intervals=INTERVAL_CHOICES[0], custom_intervals="4,2,1",
                   chunks="auto", fps=24.0, width=832, height=480))


# Each input starts from valid values (so planning really runs, up to the limits) and then has
# up to three entries replaced by wild ones (random text, huge/negative/NaN/inf numbers, None).


def _mutated(valid: dict, wild: dict, optional: dict = None):
    """Valid values (``optional`` keys maybe left out) with up to three keys given wild values."""
    @st.composite
    def draw_values(draw):
        values = draw(st.fixed_dictionaries(valid, optional=optional or {}))
        for name in draw(st.lists(st.sampled_from(sorted(wild)), max_size=3, unique=True)):
            values[name] = draw(wild[name])
        return values

    return draw_values()


# -- the TreeScheduler node -----------------------------------------------------------------------

LADDERS = ["4,2,1", "8,4,2,1", "16,8,4,2,1", "2,1", "4,1", "3,1", "6,3,1", "1024,1", "1024,512,1", "32,1"]
valid_blueprints = st.one_of(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=1024)).map(
    lambda n: 4 * n + 1)
valid_sizes = st.one_of(st.integers(min_value=1, max_value=64), st.integers(min_value=1, max_value=256)).map(
    lambda n: 16 * n)
NODE_VALID = {
    "blueprint_frames": valid_blueprints,
    "frame_intervals": st.sampled_from(INTERVAL_CHOICES),
    "custom_intervals": st.sampled_from(LADDERS),
    "chunks": st.sampled_from(["auto", "reference", "2,4", "1,2,4", "auto,8", "1", "3", "auto,auto", "2,2,2,2"]),
    "fps": st.floats(min_value=1.0, max_value=240.0),
    "width": valid_sizes,
    "height": valid_sizes,
}
NODE_OPTIONAL = {
    "length_mode": st.sampled_from(LENGTH_MODES),
    "length": st.one_of(st.floats(min_value=0.05, max_value=600.0), st.integers(min_value=1, max_value=600)),
    "memory_budget_gb": st.floats(min_value=0.0, max_value=4096.0),
    "trained_chunk_frames": st.integers(min_value=1, max_value=1024).map(lambda n: 4 * n + 1),
    "boundary_frames": st.sampled_from(BOUNDARY_MODES),
}
NODE_WILD = {
    "blueprint_frames": maybe_none(frame_counts),
    "frame_intervals": maybe_none(st.sampled_from(INTERVAL_CHOICES + ("bogus", ""))),
    "custom_intervals": maybe_none(interval_texts),
    "chunks": maybe_none(chunk_texts),
    "fps": maybe_none(numbers),
    "width": maybe_none(sizes),
    "height": maybe_none(sizes),
    "length_mode": st.sampled_from(LENGTH_MODES + ("minutes",)),
    "length": numbers,
    "memory_budget_gb": numbers,
    "trained_chunk_frames": numbers,
    "boundary_frames": st.one_of(st.sampled_from(("exact", "")), any_text),
}
node_values = _mutated(NODE_VALID, NODE_WILD, NODE_OPTIONAL)


@settings(max_examples=100, **SETTINGS)
@given(values=node_values)
def test_tree_scheduler_plans_or_refuses_every_input_quickly(values):
    answer, error = _timed(TreeScheduler().plan, **values)
    assert error is None or isinstance(error, ValueError), f"the node raised {type(error).__name__}: {error}"
    event("refused" if error is not None else "planned")
    if error is None:
        plan, summary = answer
        assert plan.final.num_frames >= 1 and isinstance(summary, str)
    else:
        assert str(error), "an empty message"
    if "boundary_frames" in values:
        verdict, raised = _timed(TreeScheduler.VALIDATE_INPUTS, boundary_frames=values["boundary_frames"])
        assert raised is None and (verdict is True or (isinstance(verdict, str) and verdict)), verdict
        if error is None:  # the node took the mode: the queue-time check must not have refused it
            assert verdict is True, verdict


# -- the web view's plan route --------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(any_text, inner, max_size=3)),
                           max_leaves=8)
ROUTE_VALID = {**NODE_VALID, "frame_intervals": st.sampled_from(INTERVAL_CHOICES)}
ROUTE_OPTIONAL = {
    **NODE_OPTIONAL,
    "steps": st.one_of(st.integers(min_value=1, max_value=1000), st.lists(st.integers(min_value=1, max_value=1000),
                                                                          min_size=1, max_size=6)),
    "cfg": st.one_of(st.floats(min_value=1.0, max_value=30.0), st.lists(st.floats(min_value=1.0, max_value=30.0),
                                                                        min_size=1, max_size=6)),
    "samplers": st.fixed_dictionaries({}, optional={
        "steps": st.lists(st.integers(min_value=1, max_value=1000), max_size=6),
        "cfg": st.lists(st.floats(min_value=1.0, max_value=30.0), max_size=6)}),
    "model": st.sampled_from(["14B", "1.3B"]),
}
ROUTE_WILD = {name: st.one_of(NODE_WILD[name], json_values) if name in NODE_WILD else json_values
              for name in list(ROUTE_VALID) + list(ROUTE_OPTIONAL)}
ROUTE_WILD["steps"] = st.one_of(st.lists(numbers, max_size=12), json_values)
ROUTE_WILD["cfg"] = st.one_of(st.lists(numbers, max_size=12), json_values)
ROUTE_WILD["samplers"] = st.one_of(st.fixed_dictionaries({}, optional={"steps": st.lists(numbers, max_size=12),
                                                                       "cfg": st.lists(numbers, max_size=12)}),
                                   json_values)
ROUTE_WILD["model"] = st.one_of(st.sampled_from(["70B", ""]), json_values)
route_bodies = st.one_of(
    _mutated(ROUTE_VALID, ROUTE_WILD, ROUTE_OPTIONAL),
    _mutated(ROUTE_VALID, ROUTE_WILD, ROUTE_OPTIONAL),  # twice: most bodies are nearly valid
    st.fixed_dictionaries({}, optional={**ROUTE_VALID, **ROUTE_OPTIONAL}),  # missing widgets
    json_values,  # not an object at all
)


@settings(max_examples=100, **SETTINGS)
@given(body=route_bodies)
def test_plan_route_answers_200_or_400_quickly(body):
    answer, error = _timed(plan_response, body)
    assert error is None, f"plan_response raised {type(error).__name__}: {error}"
    status, payload = answer
    event(f"HTTP {status}")
    assert status in (200, 400), (status, payload)
    if status == 400:
        assert set(payload) == {"error"} and isinstance(payload["error"], str) and payload["error"]
    json.dumps(payload, allow_nan=False)  # plain JSON for the browser


# -- the core API ---------------------------------------------------------------------------------

core_ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(min_value=-(2**40), max_value=2**40))
core_anything = st.one_of(core_ints, st.sampled_from(EDGE_FLOATS), st.none(), st.booleans(), any_text)
interval_tuples = st.one_of(
    st.sampled_from([(4, 2, 1), (8, 4, 2, 1), (16, 8, 4, 2, 1), (2, 1), (4, 1), (1024, 1), (1,), (0,), (4, 0),
                     (10**9, 1), (-2, -1), ()]),
    st.lists(core_ints, max_size=13).map(tuple),
    core_anything,
)
chunk_tuples = st.one_of(st.none(), st.lists(st.one_of(st.none(), core_ints), max_size=6).map(tuple), core_anything)


PLAN_VALID = {
    "blueprint_frames": valid_blueprints,
    "frame_intervals": st.sampled_from([(4, 2, 1), (8, 4, 2, 1), (16, 8, 4, 2, 1), (2, 1), (4, 1), (3, 1), (1024, 1),
                                        (1024, 512, 1), (1,), (6, 3, 1)]),
    "chunks": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
                                            min_size=1, max_size=4).map(tuple)),
    "height": valid_sizes,
    "width": valid_sizes,
    "fps": st.floats(min_value=0.01, max_value=240.0),
    "temporal_factor": st.sampled_from([4, 4, 1, 2, 8, 16]),
    "boundary": st.sampled_from(BOUNDARY_MODES),
}
PLAN_WILD = {
    "blueprint_frames": st.one_of(frame_counts, core_anything),
    "frame_intervals": interval_tuples,
    "chunks": chunk_tuples,
    "height": st.one_of(sizes, core_anything),
    "width": st.one_of(sizes, core_anything),
    "fps": st.one_of(numbers, core_anything),
    "temporal_factor": st.one_of(st.sampled_from([0, 17, -4]), core_anything),
    "boundary": st.one_of(st.sampled_from(("exact", None)), core_anything),
}


@settings(max_examples=120, **SETTINGS)
@given(args=_mutated(PLAN_VALID, PLAN_WILD))
def test_tree_plan_raises_only_plan_errors_quickly(args):
    positional = [args.pop(name) for name in ("blueprint_frames", "frame_intervals", "chunks")]
    plan, error = _timed(TreePlan, *positional, **args)
    event("refused" if error is not None else "planned")
    if error is not None:
        assert type(error) is PlanError, f"{type(error).__name__}: {error}"
        return
    assert 1 <= plan.final.num_frames and math.isfinite(plan.fps)
    again, error = _timed(TreePlan.from_dict, plan.to_dict())
    assert error is None and again == plan


AUTO_VALID = {
    "output_frames": st.integers(min_value=1, max_value=24000),
    "height": valid_sizes,
    "width": valid_sizes,
    "fps": st.floats(min_value=1.0, max_value=240.0),
    "intervals": st.one_of(st.none(), PLAN_VALID["frame_intervals"]),
    "chunks": st.none(),
    "trained_chunk_frames": st.integers(min_value=1, max_value=1024).map(lambda n: 4 * n + 1),
    "min_chunk_frames": st.one_of(st.none(), st.integers(min_value=1, max_value=200)),
    "memory_budget_bytes": st.one_of(st.none(), st.integers(min_value=1, max_value=2**40)),
    "max_parallel_chunks": st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
    "steps": st.one_of(st.none(), st.integers(min_value=1, max_value=1000)),
    "cfg": st.floats(min_value=1.0, max_value=30.0),
}
AUTO_WILD = {
    "output_frames": core_anything,
    "height": st.one_of(sizes, core_anything),
    "width": st.one_of(sizes, core_anything),
    "fps": numbers,
    "intervals": interval_tuples,
    "chunks": chunk_tuples,
    "trained_chunk_frames": core_anything,
    "min_chunk_frames": core_anything,
    "memory_budget_bytes": st.one_of(numbers, core_anything),
    "max_parallel_chunks": core_anything,
    "steps": st.one_of(core_anything, st.lists(core_ints, max_size=6)),
    "cfg": st.one_of(numbers, core_anything),
    "temporal_factor": st.one_of(st.sampled_from([1, 2, 8, 16, 17]), core_anything),
}


@settings(max_examples=80, **SETTINGS)
@given(args=_mutated(AUTO_VALID, AUTO_WILD))
def test_auto_plan_raises_only_plan_errors_quickly(args):
    output_frames = args.pop("output_frames")
    result, error = _timed(auto_plan, output_frames, **args)
    event("refused" if error is not None else "planned")
    if error is not None:
        assert type(error) is PlanError, f"{type(error).__name__}: {error}"
        return
    assert result.plan.final.num_frames >= output_frames
    assert math.isfinite(result.cost.dit_flops)


COST_VALID = {
    "chunks": st.integers(min_value=1, max_value=12000),
    "frames": st.integers(min_value=0, max_value=6004).map(lambda n: 4 * n + 1),
    "steps": st.integers(min_value=1, max_value=10000),
    "height": valid_sizes,
    "width": valid_sizes,
    "cfg": st.floats(min_value=-100.0, max_value=100.0),
    "text_len": st.integers(min_value=0, max_value=65536),
    "max_batch": st.one_of(st.none(), st.integers(min_value=1, max_value=12000)),
    "dtype": st.sampled_from(["bf16", "fp8", "fp32", "fp16"]),
    "attention": st.sampled_from(["flash", "math"]),
}
COST_WILD = {
    "chunks": core_anything,
    "frames": core_anything,
    "steps": core_anything,
    "height": core_anything,
    "width": core_anything,
    "cfg": st.one_of(numbers, core_anything),
    "text_len": core_anything,
    "max_batch": core_anything,
    "dtype": st.one_of(st.just("int3"), any_text),
    "attention": st.one_of(st.just("slow"), any_text),
}
CONFIGS = [DiTConfig(), DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)]


@settings(max_examples=60, **SETTINGS)
@given(args=_mutated(COST_VALID, COST_WILD), config=st.sampled_from(CONFIGS))
def test_cost_model_raises_only_cost_errors_quickly(args, config):
    def price():
        work = LevelWork(args.pop("chunks"), args.pop("frames"), args.pop("steps"))
        return level_cost(work, config, **args)

    priced, error = _timed(price)
    event("refused" if error is not None else "priced")
    if error is not None:
        assert type(error) is CostError, f"{type(error).__name__}: {error}"
        return
    assert math.isfinite(priced.dit_flops) and math.isfinite(priced.total_flops) and priced.peak_bytes > 0
