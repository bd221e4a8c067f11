"""The TreeScheduler's web view talks to Python here: a plan route and the measured-time event.

- ``POST /tempomaster/plan`` (also under ``/api``, as ComfyUI mirrors every route):
  body = the TreeScheduler's widget values as JSON, plus optional settings for the
  estimate: ``steps``/``cfg`` (one value or one per level), ``samplers``
  (``{"steps": [...], "cfg": [...]}`` of the connected sampler chain, blueprint
  first, possibly fewer than the levels: the rest keep the reference's default 32 steps /
  cfg 8) and ``model``: the widgets of the Load TempoMaster Model node feeding that chain,
  ``{"model_name": "...", "weight_dtype": "bf16"}`` (the estimate is for that model's shape and
  dtype, :func:`resolve_model`), or a shape name (``"14B"``, ``"1.3B"``; ``{"shape": "14B",
  "weight_dtype": "fp8_e4m3fn"}`` at a dtype); without it the
  14B release is priced and the reply says so. ``limits_model``: what is linked to the scheduler's own ``model``
  socket, whose training limits and continuation settings the node plans with (``nodes/plan_limits.py``): absent
  or null = nothing linked (the ``trained_chunk_frames`` widget, as the node does), ``{"model_name": "..."}`` = a
  Load TempoMaster Model (through Reroutes and TempoMaster LoRA nodes): its declared settings, read without weights
  (:func:`nodes.plan_limits.from_model_name`), ``{}`` = linked to something the view cannot read (the widget's
  limits are drawn, and the reply says the node will use the model's). Devices: ``samplers.devices`` holds the samplers'
  ``devices`` texts (``"cuda:0,cuda:1"``, ``""`` = ComfyUI's one device; checked as the samplers check
  them, :func:`nodes.multi_device.parse_devices`), or ``devices`` a count or one per level (a what-if,
  e.g. 8 GPUs this machine lacks); each level is priced on its devices
  (:func:`tempomaster_core.cost_devices.plan_on_devices`). The estimate keeps the fewest DiT blocks off the
  GPU that make the plan fit the memory budget (block swap / ComfyUI's partial loading,
  :func:`nodes.scheduler_node.build_schedule`). Reply 200 = ``plan.to_dict()`` plus
  ``cost`` (:meth:`~tempomaster_core.cost.PlanCost.to_dict`), ``memory`` (weight dtype, blocks
  swapped, peak, runnable on the budget, and its sentence: :func:`nodes.scheduler_node.memory_fit`), ``warnings``,
  ``auto`` (the planner's choices and reasons, or null), ``devices`` (each level's share per device,
  its time as the slowest device plus communication and the speed-up, with sentences:
  :func:`nodes.plan_text.devices_to_dict`; null when every level runs on one device), ``continuation`` (for a
  length beyond one trained tree: its segments and their cost against one big tree and a full-sequence pass, in
  segments of the continuation settings of the model linked to the scheduler (``limits_model``; the paper's 5 s
  of context and 480 new frames when none is linked or it declares none), which ``settings`` names, with the
  view's lines, :func:`nodes.plan_text.continuation_to_dict`; else null), ``summary``, ``inputs`` (with
  ``trained_limits``: the limits planned with, their source and sentence, :meth:`nodes.plan_limits.LimitsUsed.to_dict`),
  ``model`` (what was priced, :func:`resolve_model`) and ``plan_key``; bad input -> 400
  ``{"error": "..."}`` (every widget value, number or text,
  and every size beyond the plan's limits in :mod:`tempomaster_core.plan`, e.g.
  ``MAX_OUTPUT_FRAMES``, is a 400 with the message); only a bug gives 500 ``{"error": "..."}``.
  Never an exception into the server. Planning is bounded by those limits, so any request is
  answered well under a second; the handler still runs it in a worker thread, because reading the
  shapes of a model the first time (a ``.bin`` checkpoint's pickle, :func:`resolve_model`) may take
  a moment and ComfyUI's event loop also serves the browser's websocket.
  :func:`plan_response` is the whole logic, a pure function testable without
  ComfyUI; it calls the same :func:`nodes.scheduler_node.build_schedule` as the
  node, so the drawing is the plan the node makes.
- ``tempomaster.level_time`` (``PromptServer.send_sync``): after each level the
  sampler nodes report the measured seconds with the estimate for the same
  level, model, steps and guidance (:func:`report_level_time`), the run (``prompt_id``) and the
  sampler node; the view shows measured against estimated on the scheduler whose
  :func:`plan_key` matches and whose sampler chain holds that node, and predicts the other
  levels only from reports of the model it priced (:func:`model_key`).

The route is registered by the pack's ``__init__.py`` (:func:`register_routes`, called once
when ComfyUI loads the pack), and only when ComfyUI's ``server`` module is importable and its
``PromptServer`` exists; outside ComfyUI nothing happens. Importing a node module registers nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any, Optional

from tempomaster_core.defaults import WEIGHT_DTYPE
from tempomaster_core.loading import STORAGE_DTYPES
from tempomaster_core.validation import require_number, require_whole_number

from .scheduler_schema import REQUIRED_NAMES, TREE_SCHEDULER_WIDGETS

log = logging.getLogger("TempoMaster")

ROUTE_PATH = "/tempomaster/plan"
LEVEL_TIME_EVENT = "tempomaster.level_time"

#: Widget names the route reads (the TreeScheduler's schema, ``nodes/scheduler_schema.py``).
WIDGETS = tuple(w.name for w in TREE_SCHEDULER_WIDGETS)
REQUIRED = REQUIRED_NAMES

_registered = False


class RequestError(ValueError):
    """A request the route refuses (HTTP 400)."""


def plan_key(plan: Any) -> str:
    """Identity of a tree for matching measured times to the view: blueprint frames,
    intervals, chunks and base fps (not the size: the BlueprintSampler may adapt the
    size to the first condition image). E.g. ``"109|4,2,1|2,4|24"``."""
    return (f"{plan.blueprint_frames}|{','.join(map(str, plan.frame_intervals))}|"
            f"{','.join(map(str, plan.chunks))}|{float(plan.fps):g}")


def _number(value: Any, name: str, kind: type) -> Any:
    """A request's number: a whole number for ``kind`` int, else a finite float (text read as a number)."""
    if kind is int:
        return require_whole_number(value, name, error=RequestError)
    return require_number(value, name, parse_text=True, error=RequestError)


def _numbers(value: Any, name: str, kind: type) -> Any:
    """A number or a non-empty list of numbers (one per level: the planner expands and checks the count)."""
    if isinstance(value, list):
        if not value:
            raise RequestError(f"{name} is an empty list; give one value per level or one number")
        return [_number(v, name, kind) for v in value]
    return _number(value, name, kind)


def _device_count(value: Any, name: str) -> int:
    """Devices of a level: a count, or a sampler's ``devices`` text counted as the sampler reads it."""
    from tempomaster_core.cost_devices import MAX_DEVICES

    if isinstance(value, str):
        from .multi_device import parse_devices

        try:
            return max(1, len(parse_devices(value)))
        except ValueError as err:
            raise RequestError(f"{name}: {err}") from None
    count = _number(value, name, int)
    if not 1 <= count <= MAX_DEVICES:
        raise RequestError(f"{name} must be between 1 and {MAX_DEVICES} devices, got {value!r}")
    return count


def _sampler_range(name: str) -> tuple[float, float]:
    """``(min, max)`` of the samplers' ``steps``/``cfg`` widgets."""
    from .sampler_nodes import BlueprintSampler

    options = BlueprintSampler.INPUT_TYPES()["required"][name][1]
    return float(options["min"]), float(options["max"])


def parse_request(payload: Any) -> tuple[dict, dict]:
    """``(widget values, estimate options)`` from a request body.

    Raises:
        RequestError: not an object, a missing required widget, a value of the wrong type or
            outside the widget's range.
    """
    if not isinstance(payload, dict):
        raise RequestError(f"the request body must be a JSON object of the TreeScheduler's widgets, got "
                           f"{type(payload).__name__}")
    missing = [name for name in REQUIRED if name not in payload]
    if missing:
        raise RequestError(f"missing widget value(s): {', '.join(missing)}")
    values = {}
    for widget in TREE_SCHEDULER_WIDGETS:
        name = widget.name
        if name not in payload:
            continue
        value = payload[name]
        if widget.kind in ("INT", "FLOAT"):
            values[name] = _number(value, name, int if widget.kind == "INT" else float)
            if not widget.minimum <= values[name] <= widget.maximum:
                raise RequestError(f"{name} must be between {widget.minimum:g} and {widget.maximum:g} (the widget's "
                                   f"range), got {value!r}")
        else:
            if not isinstance(value, str):
                raise RequestError(f"{name} must be text, got {value!r}")
            values[name] = value
    options = {}
    for name, kind in (("steps", int), ("cfg", float)):
        if payload.get(name) is None:
            continue
        value = _numbers(payload[name], name, kind)
        low, high = _sampler_range(name)
        if any(not low <= v <= high for v in (value if isinstance(value, list) else [value])):
            raise RequestError(f"{name} must be between {low:g} and {high:g} (the samplers' range), got "
                               f"{payload[name]!r}")
        options[name] = value
    if payload.get("devices") is not None:
        devices = payload["devices"]
        if isinstance(devices, list):
            if not devices:
                raise RequestError("devices is an empty list; give one count per level or one count")
            options["devices"] = [_device_count(v, "devices") for v in devices]
        else:
            options["devices"] = _device_count(devices, "devices")
    samplers = payload.get("samplers")
    if samplers is not None:
        if not isinstance(samplers, dict):
            raise RequestError(f"samplers must be an object like {{\"steps\": [50, 32], \"cfg\": [8, 8]}}, got {samplers!r}")
        partial = {}
        for name, kind in (("steps", int), ("cfg", float)):
            value = samplers.get(name)
            if value is None:
                continue
            if not isinstance(value, list):
                raise RequestError(f"samplers.{name} must be a list (blueprint first), got {value!r}")
            value = [_number(v, f"samplers.{name}", kind) for v in value]
            low, high = _sampler_range(name)
            if any(not low <= v <= high for v in value):
                raise RequestError(f"samplers.{name} must be between {low:g} and {high:g}, got {samplers[name]!r}")
            partial[name] = value
        if samplers.get("devices") is not None:
            if not isinstance(samplers["devices"], list):
                raise RequestError(f"samplers.devices must be a list (blueprint first), got {samplers['devices']!r}")
            partial["devices"] = [_device_count(v, f"samplers.devices[{i}]") for i, v in enumerate(samplers["devices"])]
        options["samplers"] = partial
    model = payload.get("model")
    if model is not None:
        if isinstance(model, dict):
            name, dtype = model.get("model_name", model.get("shape")), model.get("weight_dtype", WEIGHT_DTYPE)
            if not isinstance(name, str) or not name:
                raise RequestError(f"model.model_name must be the Load TempoMaster Model's file name (or model.shape "
                                   f"a shape name such as '14B'), got {name!r}")
            if dtype not in STORAGE_DTYPES:
                raise RequestError(f"model.weight_dtype must be one of {list(STORAGE_DTYPES)}, got {dtype!r}")
        elif not isinstance(model, str):
            raise RequestError("model must be an object like {\"model_name\": \"...\", \"weight_dtype\": \"bf16\"} "
                               f"or a shape name such as '14B', got {model!r}")
        options["model"] = model
    linked = payload.get("limits_model")
    if linked is not None:
        name = linked.get("model_name") if isinstance(linked, dict) else None
        if not isinstance(linked, dict) or not (name is None or (isinstance(name, str) and name)):
            raise RequestError("limits_model must be {\"model_name\": \"...\"} (the Load TempoMaster Model linked to "
                               f"the scheduler's model input) or {{}} (linked, model unknown), got {linked!r}")
        options["limits_model"] = name
    return values, options


def _limits(options: dict, values: dict) -> Any:
    """The :class:`~nodes.plan_limits.LimitsUsed` of a request's ``limits_model`` (popped from ``options``), or
    ``None`` when nothing is linked to the scheduler's model socket (the node's own default then applies)."""
    from .plan_limits import from_model_name, pending
    from .scheduler_schema import LIMIT_WIDGET, PLANNING_DEFAULTS

    if "limits_model" not in options:
        return None
    name = options.pop("limits_model")
    widget = values.get(LIMIT_WIDGET, PLANNING_DEFAULTS[LIMIT_WIDGET])
    return pending(widget) if name is None else from_model_name(name, widget)


def model_key(config: Any, dtype: Any) -> str:
    """Identity of the model an estimate is for: its shape, text length and weight dtype, e.g.
    ``"5120x40/ffn13824/40h/in36/out16/p1x2x2/text512/bf16"``. A measured time and an estimate
    compare (and predict each other) only when their keys match."""
    from tempomaster_core.cost import model_text_len
    from tempomaster_core.loading import dtype_name

    c = config
    return (f"{c.dim}x{c.num_layers}/ffn{c.ffn_dim}/{c.num_heads}h/in{c.in_dim}/out{c.out_dim}/"
            f"p{'x'.join(map(str, c.patch_size))}/text{model_text_len(c)}/{dtype_name(dtype)}")


def resolve_model(spec: Any) -> tuple[Any, str, dict]:
    """``(config, weight dtype, description)`` of the model a plan request names.

    ``spec``: ``None`` (nothing connected: the 14B release, said in the description), a shape
    name of :data:`tempomaster_core.cost.KNOWN_CONFIGS` (or ``{"shape", "weight_dtype"}``: that shape at
    a weight dtype), or ``{"model_name", "weight_dtype"}``
    of a Load TempoMaster Model node: its checkpoint's shape (:func:`nodes.model_loader.model_config`,
    no weights read), for a name the loader lists (:func:`nodes.model_loader.available_models`; a
    request never names a file path). A file that is missing or unreadable is priced as the 14B release, and the
    description says why. Description: ``{"label", "model_name", "weight_dtype", "key",
    "parameters", "assumed", "note"}`` (``assumed``: the model in use is unknown or unreadable, so
    the 14B release was priced; ``note`` says why).

    Raises:
        RequestError: an unknown shape name.
    """
    from tempomaster_core.cost import KNOWN_CONFIGS, dit_parameter_count
    from tempomaster_core.loading import CheckpointError

    from .model_loader import MODEL_FOLDER, available_models, model_config

    name, dtype, note = None, WEIGHT_DTYPE, None
    if spec is None:
        key, note = "14B", "no Load TempoMaster Model feeds the samplers of this plan: priced as the 14B release"
    elif isinstance(spec, str):
        if spec not in KNOWN_CONFIGS:
            raise RequestError(f"unknown model {spec!r} for the estimate; choose one of {list(KNOWN_CONFIGS)}")
        key = spec
    elif "shape" in spec:  # a shape by name at a weight dtype: a what-if estimate
        if spec["shape"] not in KNOWN_CONFIGS:
            raise RequestError(f"unknown model shape {spec['shape']!r}; choose one of {list(KNOWN_CONFIGS)}")
        key, dtype = spec["shape"], spec.get("weight_dtype", WEIGHT_DTYPE)
    else:
        name, dtype, key = spec["model_name"], spec.get("weight_dtype", WEIGHT_DTYPE), None
        try:
            if name not in available_models():  # only what the loader offers: no file path from a request
                raise FileNotFoundError(name)
            config = model_config(name)
        except FileNotFoundError:
            key, note = "14B", f"{name} is not in models/{MODEL_FOLDER}/ yet: priced as the 14B release"
        except (CheckpointError, OSError, ValueError) as err:
            key, note = "14B", f"could not read the shapes of {name} ({err}): priced as the 14B release"
    if key is not None:  # a shape by name: the requested one or the fallback
        config = KNOWN_CONFIGS[key]
        label = "the 14B release" if key == "14B" else key
    else:
        label = name
    parameters = dit_parameter_count(config)
    return config, dtype, {
        "label": label, "model_name": name, "weight_dtype": dtype, "key": model_key(config, dtype),
        "parameters": parameters, "assumed": note is not None, "note": note,
    }


def plan_response(payload: Any) -> tuple[int, dict]:
    """``(HTTP status, JSON body)`` for a plan request (see module doc). Never raises."""
    from tempomaster_core.defaults import CFG, default_schedule
    from tempomaster_core.level_settings import per_level_prefix

    from .plan_text import auto_to_dict, continuation_to_dict, devices_to_dict
    from .scheduler_node import build_schedule

    try:
        values, options = parse_request(payload)
        samplers = options.pop("samplers", None)
        config, dtype, model = resolve_model(options.pop("model", None))
        options.update(model=config, dtype=dtype, limits=_limits(options, values))
        schedule = build_schedule(**values, **options)
        if samplers:
            # the connected samplers may cover only some levels: the others keep the reference's defaults
            count = schedule.plan.num_levels
            options.setdefault("steps", per_level_prefix(samplers.get("steps", []), default_schedule(count).steps))
            options.setdefault("cfg", per_level_prefix(samplers.get("cfg", []), [CFG] * count))
            options.setdefault("devices", per_level_prefix(samplers.get("devices", []), [1] * count))
            schedule = build_schedule(**values, **options)
    except (ValueError, TypeError) as err:  # PlanError, CostError and RequestError are ValueErrors
        return 400, {"error": str(err)}
    except Exception as err:  # never let a planning bug crash the server's handler
        log.exception("TempoMaster: plan route failed")
        return 500, {"error": f"internal error while planning: {type(err).__name__}: {err}"}
    body = schedule.plan.to_dict()
    body.update(
        cost=schedule.cost.to_dict(),
        warnings=list(schedule.warnings),
        auto=None if schedule.auto is None else auto_to_dict(schedule.auto),
        devices=devices_to_dict(schedule.plan, schedule.devices),
        continuation=continuation_to_dict(schedule.continuation, schedule.limits),
        summary=schedule.summary(),
        inputs=dict(schedule.inputs),
        memory=dict(schedule.memory),
        model=model,
        plan_key=plan_key(schedule.plan),
    )
    return 200, body


def _prompt_server() -> Optional[Any]:
    """ComfyUI's running ``PromptServer`` instance, or None outside ComfyUI."""
    try:
        server = importlib.import_module("server")
    except ImportError:
        return None
    cls = getattr(server, "PromptServer", None)
    return getattr(cls, "instance", None) if cls is not None else None


def register_routes() -> bool:
    """Add ``POST /tempomaster/plan`` to ComfyUI's server; True when registered (now or before).

    Does nothing (returns False) outside ComfyUI. Safe to call more than once.
    """
    global _registered
    if _registered:
        return True
    instance = _prompt_server()
    if instance is None or not hasattr(instance, "routes"):
        return False
    from aiohttp import web

    async def plan_handler(request):
        try:
            payload = await request.json()
        except Exception:
            return web.json_response({"error": "the request body is not valid JSON"}, status=400)
        status, body = await asyncio.to_thread(plan_response, payload)
        return web.json_response(body, status=status)

    instance.routes.post(ROUTE_PATH)(plan_handler)
    _registered = True
    return True


def level_time_payload(plan: Any, level_index: int, seconds: float, *, model: Any = None, steps: int,
                       cfg: float, max_batch: Optional[int] = None) -> dict:
    """The ``tempomaster.level_time`` message: measured seconds and the estimate for the same work.

    The estimate uses the model's own shape (``model.config``; the 14B shape when the
    model has none), the level's chunks and size, ``steps`` and ``cfg``.

    Returns:
        ``{"plan_key", "level", "fps", "seconds", "steps", "cfg", "estimated_flops",
        "estimated_pflops", "achieved_tflops_per_s", "model_key", "prompt_id", "node"}``
        (``prompt_id`` and ``node``: the run and the sampler node reporting, from ComfyUI's
        execution context; ``None`` outside ComfyUI).
    """
    from .comfy_env import executing_node

    from tempomaster_core.config import DiTConfig
    from tempomaster_core.cost import PFLOP, model_text_len, plan_level_cost

    level = plan.levels[level_index]
    config = getattr(model, "config", None)
    config = config if isinstance(config, DiTConfig) else DiTConfig()
    priced = plan_level_cost(plan, level_index, config, steps=int(steps), cfg=float(cfg), max_batch=max_batch,
                             text_len=model_text_len(config))
    seconds = float(seconds)
    prompt_id, node = executing_node()
    return {
        "plan_key": plan_key(plan),
        "level": int(level_index),
        "fps": level.fps,
        "seconds": seconds,
        "steps": int(steps),
        "cfg": float(cfg),
        "estimated_flops": priced.dit_flops,
        "estimated_pflops": priced.dit_flops / PFLOP,
        "achieved_tflops_per_s": priced.dit_flops / seconds / 1e12 if seconds > 0 else None,
        "model_key": model_key(config, getattr(model, "dtype", WEIGHT_DTYPE)),
        "prompt_id": prompt_id,
        "node": node,
    }


def report_level_time(plan: Any, level_index: int, seconds: float, **estimate: Any) -> Optional[dict]:
    """Send :func:`level_time_payload` to the web view (ComfyUI's ``send_sync``), to the browser that
    queued the run (``PromptServer.client_id``, as ComfyUI sends its own progress; to all when unknown).

    Returns the payload (also outside ComfyUI, where nothing is sent), or None when it
    could not be built. Never raises: a report must not fail a finished level.
    """
    try:
        payload = level_time_payload(plan, level_index, seconds, **estimate)
    except Exception:  # noqa: BLE001 - reporting is best effort
        log.debug("TempoMaster: could not build the level-time report", exc_info=True)
        return None
    instance = _prompt_server()
    if instance is not None and hasattr(instance, "send_sync"):
        try:
            instance.send_sync(LEVEL_TIME_EVENT, payload, getattr(instance, "client_id", None))
        except Exception:  # noqa: BLE001
            log.debug("TempoMaster: could not send the level-time report", exc_info=True)
    return payload
