"""Built-in TempoMaster-Tiny model: procedural video domain, tiny codec and tiny text encoder.

- ``scenes``        procedural 24 fps videos of coloured shapes, captions, prompt parser.
- ``codec``         :class:`TinyVideoCodec`, a small VAE stand-in with Wan's temporal layout.
- ``text_encoder``  :class:`TinyTextEncoder`, an umT5 stand-in for the caption vocabulary.
- ``builtin``       loading the shipped bundle (``tempomaster_core/builtin/``, see its ``MODEL_CARD.md``).

Nothing here imports ComfyUI.
"""

from .codec import CodecConfig, TinyVideoCodec
from .scenes import PromptSpec, SceneSpec, caption, parse_prompt, render, sample_scene
from .text_encoder import TextEncoderConfig, TinyTextEncoder

__all__ = [
    "CodecConfig", "TinyVideoCodec", "TextEncoderConfig", "TinyTextEncoder",
    "PromptSpec", "SceneSpec", "caption", "parse_prompt", "render", "sample_scene",
]
