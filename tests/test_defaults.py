"""The reference defaults (tempomaster_core/defaults.py): the one default schedule helper."""

import pytest

from tempomaster_core.defaults import default_schedule
from tempomaster_core.plan import TreePlan


def test_default_schedule_is_the_reference_per_level():
    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    assert default_schedule(plan) == ((50, 32, 32), (5.0, 3.0, 3.0))
    assert default_schedule(3) == default_schedule(plan)
    assert default_schedule(1).steps == (50,) and default_schedule(2).shifts == (5.0, 3.0)
    with pytest.raises(ValueError, match="at least one level"):
        default_schedule(0)
