"""Which training limits and continuation settings the Tree Scheduler plans with, and where they come from.

The limits are what the model was trained on (:class:`tempomaster_core.trained_limits.TrainedLimits`:
frame intervals and clip length in pixel frames). The auto chunks keep every chunk within the clip length
and the warnings flag longer chunks and coarser intervals (``nodes/scheduler_node.py``). The continuation
settings (:class:`tempomaster_core.continuation_settings.ContinuationSettings`: seconds of context, new frames
per segment) shape the continuation proposal for a length beyond one trained tree. How the node's inputs decide
them (the rule the node's description and tooltips state):

- a model connected to the scheduler's ``model`` input (:data:`MODEL_INPUT`) gives what it declares
  (:attr:`tempomaster_core.model.TempoMasterDiT.trained_limits` and
  :attr:`~tempomaster_core.model.TempoMasterDiT.continuation_settings`, set by Load TempoMaster Model from the
  model's settings, :func:`nodes.model_loader.declared_settings`), and the ``trained_chunk_frames`` widget is
  not used; a model that declares none (a checkpoint file: the 14B release) gets the released TempoMaster's
  limits and the paper's continuation (5 s of context, 480 new frames);
- no model connected: the ``trained_chunk_frames`` widget, the released TempoMaster's intervals (4, 2, 1) and
  the paper's continuation, as before the input existed (older workflows plan as they did).

The tree view's route (``nodes/plan_route.py``) cannot see the model object: it reads the declared settings
from the linked loader's ``model_name`` (:func:`from_model_name`, no weights read), or, when the view cannot
tell which model is linked, draws the widget's limits and the paper's continuation and says the node will use
the model's (:func:`pending`). The sentences saying which were used are :func:`nodes.plan_text.limits_sentence`
and :func:`nodes.plan_text.continuation_source`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from tempomaster_core.continuation_settings import ContinuationSettings, model_continuation
from tempomaster_core.trained_limits import TrainedLimits, model_limits

#: Name of the Tree Scheduler's optional ``TEMPO_MODEL`` input.
MODEL_INPUT = "model"

#: Where the limits come from (:attr:`LimitsUsed.source`).
FROM_MODEL, FROM_WIDGET, PENDING = "model", "widget", "pending"


@dataclass(frozen=True)
class LimitsUsed:
    """The training limits and continuation settings a plan is made with, and their source.

    Attributes:
        limits: the :class:`~tempomaster_core.trained_limits.TrainedLimits` used.
        source: :data:`FROM_MODEL` (the connected model's), :data:`FROM_WIDGET` (no model connected: the
            ``trained_chunk_frames`` widget, the released model's intervals and the paper's continuation) or
            :data:`PENDING` (route only: a model is connected but the view cannot tell which, so the widget's
            limits and the paper's continuation are drawn until the graph runs).
        declared: with :data:`FROM_MODEL`, False when the model declares no limits (the released model's are used).
        model_name: the Load TempoMaster Model's ``model_name`` the route read them for (``None`` elsewhere).
        note: why the route could not read them (``None`` when it could).
        continuation: the :class:`~tempomaster_core.continuation_settings.ContinuationSettings` of the
            continuation proposal (the paper's unless the connected model declares its own).
        continuation_declared: True when ``continuation`` is the connected model's own (False: the paper's).
    """

    limits: TrainedLimits
    source: str
    declared: bool = True
    model_name: Optional[str] = None
    note: Optional[str] = None
    continuation: ContinuationSettings = ContinuationSettings()
    continuation_declared: bool = False

    def to_dict(self) -> dict:
        """Plain JSON for the route: ``{"frame_intervals", "chunk_frames", "source", "declared", "model_name",
        "note", "sentence"}`` (pixel frames; the sentence of :func:`nodes.plan_text.limits_sentence`)."""
        from .plan_text import limits_sentence

        return {"frame_intervals": list(self.limits.frame_intervals), "chunk_frames": self.limits.chunk_frames,
                "source": self.source, "declared": self.declared, "model_name": self.model_name, "note": self.note,
                "sentence": limits_sentence(self)}


def from_widget(trained_chunk_frames: int) -> LimitsUsed:
    """No model connected: ``trained_chunk_frames`` (pixel frames, the widget) and the released model's intervals.

    Raises:
        ValueError: ``trained_chunk_frames`` is not an int >= 1.
    """
    return LimitsUsed(TrainedLimits(chunk_frames=trained_chunk_frames), FROM_WIDGET)


def from_model(model: Any) -> LimitsUsed:
    """The limits and continuation settings a connected ``TEMPO_MODEL`` (a ModelPatcher or a bare DiT) declares;
    the released model's limits and the paper's continuation for what it does not declare."""
    from .comfy_model import dit_of

    dit = dit_of(model)
    declared, continuation = model_limits(dit), model_continuation(dit)
    return LimitsUsed(declared or TrainedLimits(), FROM_MODEL, declared=declared is not None,
                      continuation=continuation or ContinuationSettings(),
                      continuation_declared=continuation is not None)


def from_model_name(model_name: str, trained_chunk_frames: int) -> LimitsUsed:
    """What :func:`from_model` gives for the output of a Load TempoMaster Model set to ``model_name``, read
    without loading weights (:func:`nodes.model_loader.declared_settings`); :func:`pending` with the reason
    when the model's settings cannot be read.

    Raises:
        ValueError: ``trained_chunk_frames`` (the widget, used when the settings cannot be read) is not an int >= 1.
    """
    from .model_loader import declared_settings

    try:
        declared = declared_settings(model_name)
    except (OSError, ValueError) as err:  # a missing or damaged built-in bundle: FileNotFoundError is an OSError
        return pending(trained_chunk_frames, model_name=model_name, note=f"cannot read the settings of {model_name}: {err}")
    if declared is None:
        return LimitsUsed(TrainedLimits(), FROM_MODEL, declared=False, model_name=model_name)
    return LimitsUsed(declared.limits, FROM_MODEL, model_name=model_name, continuation=declared.continuation,
                      continuation_declared=True)


def pending(trained_chunk_frames: int, *, model_name: Optional[str] = None, note: Optional[str] = None) -> LimitsUsed:
    """A model is connected but its settings are not known here: the widget's limits and the paper's continuation
    are drawn until the graph runs.

    Raises:
        ValueError: ``trained_chunk_frames`` is not an int >= 1.
    """
    return LimitsUsed(TrainedLimits(chunk_frames=trained_chunk_frames), PENDING, model_name=model_name, note=note)


__all__ = ["FROM_MODEL", "FROM_WIDGET", "LimitsUsed", "MODEL_INPUT", "PENDING", "from_model", "from_model_name",
           "from_widget", "pending"]
