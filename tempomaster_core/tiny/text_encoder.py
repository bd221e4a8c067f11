"""Tiny text encoder of the built-in TempoMaster-Tiny model (the umT5 stand-in).

Words of the caption grammar (:data:`tempomaster_core.tiny.captions.VOCABULARY`)
are embedded, given a learned position embedding and mixed by a few small
pre-norm transformer layers. Like ComfyUI's umT5 output, the result is
``[B, L, text_dim]`` with every padding position set to exactly zero, so it
plugs into the DiT's cross-attention the same way. The module is meant to be
trained jointly with the DiT.

Weights are a ``.safetensors`` file plus a JSON config holding the vocabulary,
``max_length`` (L) and sizes (see :meth:`TinyTextEncoder.save`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from .captions import VOCABULARY, tokenize

PAD = "<pad>"
UNK = "<unk>"


@dataclass(frozen=True)
class TextEncoderConfig:
    """Sizes and vocabulary of :class:`TinyTextEncoder`.

    ``vocab`` lists the known words; ids 0 and 1 are reserved for ``<pad>`` and
    ``<unk>`` (word ``vocab[i]`` has id ``i + 2``). ``max_length`` is L, the
    number of token positions of every output; ``dim`` is text_dim.
    """

    vocab: tuple[str, ...] = field(default=VOCABULARY)
    max_length: int = 16
    dim: int = 64
    layers: int = 2
    heads: int = 4
    ffn_mult: int = 2

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if len(set(self.vocab)) != len(self.vocab) or PAD in self.vocab or UNK in self.vocab:
            raise ValueError("vocab must hold distinct words and not the reserved <pad>/<unk>")

    def to_dict(self) -> dict:
        """Plain-JSON form (tuples become lists)."""
        d = asdict(self)
        d["vocab"] = list(self.vocab)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TextEncoderConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        extra = set(d) - set(cls.__dataclass_fields__)
        if extra:
            raise ValueError(f"unknown text encoder config keys {sorted(extra)}")
        d = dict(d)
        if "vocab" in d:
            d["vocab"] = tuple(d["vocab"])
        return cls(**d)


class _Layer(nn.Module):
    """Pre-norm transformer encoder layer (SDPA self-attention with a key-padding mask, GELU MLP)."""

    def __init__(self, dim: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # x [B, L, D]; keep [B, L] bool, True for real tokens.
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b l (three h d) -> three b h l d",
                            three=3, h=self.heads)
        # A prompt with no tokens attends to everything (its output is zeroed later) to avoid NaN.
        allowed = keep | ~keep.any(dim=1, keepdim=True)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None, None, :])
        x = x + self.proj(rearrange(attn, "b h l d -> b l (h d)"))
        return x + self.ffn(self.norm2(x))


class TinyTextEncoder(nn.Module):
    """Prompt → ``[B, L, text_dim]`` embeddings with zeroed padding (umT5-like).

    ``L = config.max_length``, ``text_dim = config.dim``. Words are lower-cased
    (:func:`tempomaster_core.tiny.captions.tokenize`); words outside the
    vocabulary become ``<unk>`` with one warning listing them; prompts longer
    than L tokens are truncated with a warning. An empty prompt (e.g. the
    negative prompt) gives all zeros.
    """

    def __init__(self, config: TextEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or TextEncoderConfig()
        c = self.config
        self.token_embedding = nn.Embedding(len(c.vocab) + 2, c.dim)
        self.position_embedding = nn.Parameter(torch.randn(c.max_length, c.dim) * 0.02)
        self.layers = nn.ModuleList(_Layer(c.dim, c.heads, c.ffn_mult) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.dim)
        self._ids = {w: i + 2 for i, w in enumerate(c.vocab)}

    @property
    def text_dim(self) -> int:
        """Channels of each output token (the DiT's ``text_dim``)."""
        return self.config.dim

    @property
    def max_length(self) -> int:
        """Token positions L of every output."""
        return self.config.max_length

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``[B, L]`` (int64, 0 = padding) and lengths ``[B]`` (int64) of ``prompts``.

        Warns once per call (``UserWarning``) listing unknown words (mapped to
        ``<unk>``) and prompts truncated to L tokens. Raises ``TypeError`` if
        ``prompts`` is not a list/tuple of strings.
        """
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be a list of strings, e.g. ['a red ball falling']")
        L = self.config.max_length
        ids = torch.zeros(len(prompts), L, dtype=torch.long)
        lengths = torch.zeros(len(prompts), dtype=torch.long)
        unknown: list[str] = []
        truncated = 0
        for b, prompt in enumerate(prompts):
            words = tokenize(prompt)
            if len(words) > L:
                truncated += 1
                words = words[:L]
            for j, w in enumerate(words):
                idx = self._ids.get(w)
                if idx is None:
                    unknown.append(w)
                    idx = 1
                ids[b, j] = idx
            lengths[b] = len(words)
        if unknown:
            warnings.warn(
                f"the built-in text encoder does not know the words {sorted(set(unknown))}; they are "
                f"ignored as <unk>. Known words: counts (a, two, three), colours, shapes "
                f"(ball, square, triangle) and motions (e.g. 'bouncing from left to right', 'falling').",
                UserWarning, stacklevel=3)
        if truncated:
            warnings.warn(f"{truncated} prompt(s) longer than {L} words were truncated",
                          UserWarning, stacklevel=3)
        return ids, lengths

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, L, dim]`` (float, padding rows exactly 0) of token ids
        ``[B, L]`` with ``lengths [B]`` real tokens each."""
        device = self.position_embedding.device
        ids, lengths = ids.to(device), lengths.to(device)
        keep = torch.arange(ids.shape[1], device=device)[None, :] < lengths[:, None]
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x, keep)
        return self.norm(x) * keep[..., None].to(x.dtype)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """``[len(prompts), L, text_dim]`` embeddings on the encoder's device (see class doc).
        Differentiable; wrap in ``torch.no_grad()`` for inference."""
        ids, lengths = self.tokenize(prompts)
        return self(ids, lengths)

    def save(self, directory: str | Path, name: str = "text_encoder") -> tuple[Path, Path]:
        """Write ``<name>.safetensors`` (float32) and ``<name>.json`` (config incl. vocabulary)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights, cfg = directory / f"{name}.safetensors", directory / f"{name}.json"
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(weights), metadata={"format": "tempomaster-tiny-text-encoder"})
        cfg.write_text(json.dumps(self.config.to_dict(), indent=1) + "\n")
        return weights, cfg

    @classmethod
    def load(cls, directory: str | Path, name: str = "text_encoder", *,
             device: str | torch.device = "cpu") -> "TinyTextEncoder":
        """Load what :meth:`save` wrote (eval mode). Raises ``FileNotFoundError``
        naming a missing file, ``ValueError`` if config and weights disagree."""
        directory = Path(directory)
        weights, cfg = directory / f"{name}.safetensors", directory / f"{name}.json"
        for path in (weights, cfg):
            if not path.is_file():
                raise FileNotFoundError(f"text encoder file {path} not found")
        enc = cls(TextEncoderConfig.from_dict(json.loads(cfg.read_text())))
        try:
            enc.load_state_dict(load_file(str(weights)))
        except RuntimeError as err:
            raise ValueError(f"text encoder weights {weights} do not match {cfg}: {err}") from err
        return enc.to(device).eval()


__all__ = ["TextEncoderConfig", "TinyTextEncoder", "PAD", "UNK"]
