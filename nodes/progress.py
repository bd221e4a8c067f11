"""Progress, previews and cancellation for one sampler node.

The core calls ``progress(level_index, step, total_steps, preview_latents)`` after
every denoising step (``preview_latents`` = first chunk, ``[C, T, h, w]``).
:class:`NodeProgress` turns that into ComfyUI's UI:

- one ``comfy.utils.ProgressBar`` per sampler node, advanced once per step;
- a latent->RGB preview of the first chunk (see ``nodes/preview.py``) when
  ComfyUI's ``--preview-method`` is not ``none``;
- cancellation: ComfyUI's Cancel button is checked every step
  (``throw_exception_if_processing_interrupted``; ComfyUI's progress hook checks
  it too). The exception propagates out of the core, which keeps no state on
  the model, so the model stays usable for the next run.

Outside ComfyUI there is no bar; an optional ``on_step`` callable still receives
every step (tests use it).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from . import comfy_env
from .preview import latents_to_preview, rgb_projection


class NodeProgress:
    """Progress callback for one level (one sampler node).

    Args:
        total_steps: denoising steps of the level (the bar's length).
        codec: the level's codec (its ``latent_rgb_factors`` drive the preview).
        on_step: optional ``on_step(level_index, step_done, total_steps, preview_image_or_None)``.

    Attributes:
        steps_done: steps reported so far.
        last_preview: the last ``PIL.Image`` preview (``None`` if previews are off).
    """

    def __init__(self, total_steps: int, codec: Any = None,
                 on_step: Optional[Callable[[int, int, int, Any], None]] = None):
        self.total_steps = int(total_steps)
        self.codec = codec
        self.on_step = on_step
        self.bar = comfy_env.progress_bar(self.total_steps)
        self.preview_enabled, self.preview_size = comfy_env.preview_settings()
        self.steps_done = 0
        self.last_preview = None
        self._projection: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def _preview(self, latents: Optional[torch.Tensor]):
        if not self.preview_enabled or latents is None or not torch.is_tensor(latents) or latents.ndim != 4:
            return None
        if self._projection is None or self._projection[0].shape[0] != latents.shape[0]:
            self._projection = rgb_projection(self.codec, latents.shape[0])
        return latents_to_preview(latents, *self._projection)

    def __call__(self, level_index: int, step: int, total_steps: int, preview_latents: Any = None) -> None:
        """Core progress hook (see module doc). ``step`` may be 0- or 1-based; the bar
        shows the number of steps completed, counted here."""
        comfy_env.throw_if_interrupted()
        self.steps_done = min(self.steps_done + 1, int(total_steps))
        image = self._preview(preview_latents)
        self.last_preview = image if image is not None else self.last_preview
        if self.bar is not None:
            preview = ("JPEG", image, self.preview_size) if image is not None else None
            self.bar.update_absolute(self.steps_done, int(total_steps), preview)
        if self.on_step is not None:
            self.on_step(level_index, self.steps_done, int(total_steps), image)
