"""Built-in TempoMaster-Tiny model: tiny codec, tiny text encoder, their caption language, and
the procedural video domain it is trained on.

- ``builtin``       loading the shipped bundle (``tempomaster_core/builtin/``, see its ``MODEL_CARD.md``).
- ``codec``         :class:`TinyVideoCodec`, a small VAE stand-in with Wan's temporal layout.
- ``text_encoder``  :class:`TinyTextEncoder`, an umT5 stand-in for the caption vocabulary.
- ``captions``      what a prompt can say: attributes, caption grammar, vocabulary, tokenizer, prompt parser.
- ``scenes``        procedural 24 fps videos of coloured shapes, for training and evaluation only
                    (imported by neither this package nor the run time).

Nothing here imports ComfyUI.
"""

from .captions import PromptSpec, caption, parse_prompt
from .codec import CodecConfig, TinyVideoCodec
from .text_encoder import TextEncoderConfig, TinyTextEncoder

__all__ = [
    "CodecConfig", "TinyVideoCodec", "TextEncoderConfig", "TinyTextEncoder",
    "PromptSpec", "caption", "parse_prompt",
]
