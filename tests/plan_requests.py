"""``auto_plan`` for flat keyword arguments, as the tests write them (the core takes one AutoRequest)."""

from tempomaster_core.autoplan import AutoRequest, CostSettings, PlanLimits, auto_plan

#: keyword arguments that go into the request's PlanLimits / CostSettings; the rest into AutoRequest
LIMIT_KEYS = ("trained_chunk_frames", "min_chunk_frames", "memory_budget_bytes", "max_parallel_chunks")
COST_KEYS = ("config", "steps", "cfg", "dtype", "attention", "text_len", "spatial_factor", "blocks_to_swap")


def auto(output_frames, **kw):
    """``auto_plan(AutoRequest(output_frames, limits=PlanLimits(...), costing=CostSettings(...), ...))``."""
    limits = PlanLimits(**{k: kw.pop(k) for k in LIMIT_KEYS if k in kw})
    costing = CostSettings(**{k: kw.pop(k) for k in COST_KEYS if k in kw})
    return auto_plan(AutoRequest(output_frames, limits=limits, costing=costing, **kw))
