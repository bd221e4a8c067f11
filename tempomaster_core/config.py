"""Shape configuration of a TempoMaster (Wan 2.x) DiT.

One dataclass that every module reads instead of hard-coding Wan's numbers.
The loader infers it from a checkpoint's tensor shapes
(:func:`tempomaster_core.loading.infer_config`), so the 14B release, a
1.3B-sized model and tiny test models are all described the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Optional

from .defaults import TEXT_LEN
from .noise_prior import check_frame_correlation
from .validation import is_integer, require_int, require_number

UMT5_TEXT_DIM = 4096
"""Width of the umT5-XXL text embeddings Wan 2.x (and so TempoMaster) is trained with."""


@dataclass(frozen=True)
class DiTConfig:
    """Hyper-parameters of the Wan DiT used by TempoMaster.

    Defaults are the shape of the released 14B TempoMaster checkpoint (the Wan 2.1 14B DiT;
    Hugging Face repository ``Scottttttyy/TempoMaster``).

    Channel layout of the DiT input (``in_dim`` channels, concatenated on dim 1):
    ``[noisy latent (out_dim) | mask (mask_channels) | condition latent (out_dim)]``.
    For the 14B model: 16 + 4 + 16 = 36. ``mask_channels`` equals the codec's
    temporal compression factor (pixel frames per latent frame, 4 for Wan).
    """

    dim: int = 5120
    ffn_dim: int = 13824
    num_heads: int = 40
    num_layers: int = 40
    in_dim: int = 36
    out_dim: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    eps: float = 1e-6
    patch_size: tuple[int, int, int] = (1, 2, 2)
    has_image_input: bool = False
    rope_theta: float = 10000.0
    """Base of the 3-D RoPE frequencies (Wan: 10000). A checkpoint's shapes cannot tell it; it is
    recorded in the safetensors metadata (``tempomaster_config``) of checkpoints that change it."""
    text_len: Optional[int] = None
    """Token slots of the text context the DiT was trained with: a prompt's embeddings are
    zero-padded or truncated to this length before the DiT sees them (the padding matters: the
    text MLP maps zero rows to non-zero keys/values). ``None`` is resolved here: to
    :data:`~tempomaster_core.defaults.TEXT_LEN` for an umT5-width model (``text_dim == UMT5_TEXT_DIM``), otherwise it
    stays ``None`` = the embeddings are used at the length their text encoder gives. Not a weight
    shape: recorded in the safetensors metadata (``tempomaster_config``) of checkpoints that set
    it; the built-in bundle's loaders pass its text encoder's length
    (:func:`tempomaster_core.loading.load_dit` ``text_len=``)."""
    noise_frame_correlation: float = 0.0
    """Correlation ``rho`` in ``[0, 1)`` between the initial noise of neighbouring latent frames in
    the source distribution the model was trained from (:mod:`tempomaster_core.noise_prior`, the
    progressive prior of PYoCo). 0 = i.i.d. Gaussian noise: Wan 2.x and the released 14B. Not a
    weight shape: recorded in the safetensors metadata (``tempomaster_config``) and ``dit.json`` of
    models trained with another prior (``train_dit --noise-frame-correlation``; the shipped built-in model
    uses 0); every level's noise is drawn from it (:func:`tempomaster_core.sampling.seeded_noise`)."""

    def __post_init__(self) -> None:
        for name in ("dim", "ffn_dim", "num_heads", "num_layers", "in_dim", "out_dim", "text_dim", "freq_dim"):
            require_int(getattr(self, name), f"DiTConfig.{name}", minimum=1, error=ValueError)
        patch = self.patch_size
        if (isinstance(patch, (str, bytes)) or not hasattr(patch, "__len__") or len(patch) != 3
                or any(not is_integer(p) or int(p) < 1 for p in patch)):
            raise ValueError(f"DiTConfig.patch_size must be three integers >= 1 (t, h, w), such as (1, 2, 2), "
                             f"got {patch!r}")
        if self.text_len is None and self.text_dim == UMT5_TEXT_DIM:
            object.__setattr__(self, "text_len", TEXT_LEN)
        if self.text_len is not None:
            require_int(self.text_len, "DiTConfig.text_len", minimum=1, error=ValueError)
        check_frame_correlation(self.noise_frame_correlation, "DiTConfig.noise_frame_correlation")
        for name in ("eps", "rope_theta"):
            require_number(getattr(self, name), f"DiTConfig.{name}", minimum=0.0, exclusive_minimum=True,
                           parse_text=True, error=ValueError)
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.mask_channels < 1:
            raise ValueError(
                f"in_dim {self.in_dim} leaves no mask channels for out_dim {self.out_dim}: "
                "a TempoMaster DiT takes noisy latent + mask + condition latent "
                "(in_dim = 2*out_dim + mask channels, 36 for Wan)"
            )

    @property
    def head_dim(self) -> int:
        """Channels per attention head (128 for the 14B model)."""
        return self.dim // self.num_heads

    @property
    def latent_channels(self) -> int:
        """Channels of the video latent (16 for the Wan 2.1 VAE)."""
        return self.out_dim

    @property
    def mask_channels(self) -> int:
        """Mask channels per latent frame = pixel frames per latent frame (4 for Wan)."""
        return self.in_dim - 2 * self.out_dim

    @property
    def condition_channels(self) -> int:
        """Channels of the multi-mask condition ``y`` (mask + condition latent, 20 for Wan)."""
        return self.in_dim - self.out_dim

    def to_dict(self) -> dict:
        """Plain-JSON form (tuples become lists)."""
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d
