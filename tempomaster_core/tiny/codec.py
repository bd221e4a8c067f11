"""Tiny video codec (VAE stand-in) of the built-in TempoMaster-Tiny model.

It follows the Wan 2.1 VAE's temporal structure so the TempoMaster runtime
treats it exactly like the real one: a clip of ``F = 4n + 1`` pixel frames maps
to ``n + 1`` latent frames — pixel frame 0 alone gives latent frame 0, then
each group of ``temporal_factor`` (4) consecutive pixel frames gives one latent
frame — and space is downsampled by ``spatial_factor``.

Implementation: every latent frame is encoded independently by a small 2-D
convolutional network whose input is its pixel-frame group stacked on the
channel axis (``4 frames × RGB = 12`` channels); the decoder of a latent frame
also reads its ``decoder_context`` neighbouring latent frames on each side (1 in
the shipped codec, a temporal receptive field like that of Wan's VAE decoder), so
the motion inside a group can follow from where the content is in the frames
around it. Encoder and decoder are each a
linear patch transform (initialised by the trainer to the PCA of
``sf``×``sf``×group patches, a good codec on its own) plus a residual
convolutional network that learns the non-linear part (sharp moving edges). Latent frame 0 is coded as a
group made of four copies of frame 0, and decodes to the last frame of its
group, so a single image is a valid clip. Latents are normalised per channel
with a mean/std measured on training data (stored with the weights), like
Wan's ``(raw - mean) / std``, so they are roughly N(0, 1).

Weights are a ``.safetensors`` file plus a JSON config (see :meth:`TinyVideoCodec.save`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

RANGE_TOLERANCE = 1e-2
"""How far outside [-1, 1] input pixels may be before :meth:`TinyVideoCodec.encode` refuses them."""


@dataclass(frozen=True)
class CodecConfig:
    """Sizes of :class:`TinyVideoCodec`.

    The encoder starts with a pixel-unshuffle by ``pixel_shuffle`` (space to
    channels) and the decoder ends with the matching pixel-shuffle, so no
    convolution runs at full resolution. ``channels[i]`` is the width at
    resolution ``H / (pixel_shuffle * 2**i)`` (``len(channels) =
    log2(spatial_factor / pixel_shuffle) + 1``); ``blocks[i]`` the number of
    residual blocks at that resolution in both encoder and decoder. ``decoder_context``: how many
    latent frames on each side of a latent frame its decoder also reads (0: each latent frame is
    decoded alone; 1: also the previous and the next, like the temporal receptive field of Wan's
    VAE decoder, so motion inside a pixel-frame group can follow from where the content is in the
    neighbouring latent frames). ``latent_mean`` / ``latent_std``
    (one float per latent channel) normalise raw latents; identity until
    fitted on data by the trainer.
    """

    latent_channels: int = 16
    temporal_factor: int = 4
    spatial_factor: int = 8
    pixel_shuffle: int = 2
    channels: tuple[int, ...] = (32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 2)
    decoder_context: int = 0
    latent_mean: tuple[float, ...] = field(default=())
    latent_std: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        sf, ps = self.spatial_factor, self.pixel_shuffle
        if sf < 1 or sf & (sf - 1) or ps < 1 or ps & (ps - 1) or ps > sf:
            raise ValueError(f"spatial_factor ({sf}) and pixel_shuffle ({ps}) must be powers of two "
                             "with pixel_shuffle <= spatial_factor")
        levels = int(math.log2(sf // ps)) + 1
        if len(self.channels) != levels or len(self.blocks) != levels:
            raise ValueError(
                f"spatial_factor {sf} with pixel_shuffle {ps} needs {levels} entries in channels "
                f"and blocks (one per resolution), got {len(self.channels)} and {len(self.blocks)}")
        if self.temporal_factor < 1 or self.latent_channels < 1:
            raise ValueError("temporal_factor and latent_channels must be >= 1")
        if self.decoder_context < 0:
            raise ValueError(f"decoder_context must be >= 0, got {self.decoder_context}")
        for name in ("latent_mean", "latent_std"):
            v = getattr(self, name)
            if v and len(v) != self.latent_channels:
                raise ValueError(f"{name} has {len(v)} values for {self.latent_channels} latent channels")
        if self.latent_std and min(self.latent_std) <= 0:
            raise ValueError("latent_std values must be > 0")

    def to_dict(self) -> dict:
        """Plain-JSON form (tuples become lists)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CodecConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown codec config keys {sorted(extra)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class _ResBlock(nn.Module):
    """``x + conv(silu(conv(silu(x))))`` with 3×3 convolutions (no normalisation: small and fast on CPU)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # starts as the identity: stable without normalisation
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def _init_deep(module: nn.Module) -> None:
    """He-normal init of every convolution not already zero-initialised (keeps the
    signal from vanishing through the un-normalised stack)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and bool(m.weight.detach().abs().sum() > 0):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


class _Encoder(nn.Module):
    """Linear patch projection (``sf``×``sf`` patches of the frame group → C) plus a
    convolutional correction whose last layer starts at zero."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        ch = cfg.channels
        sf, group = cfg.spatial_factor, 3 * cfg.temporal_factor
        self.linear = nn.Conv2d(group, cfg.latent_channels, sf, stride=sf)
        self.unshuffle = nn.PixelUnshuffle(cfg.pixel_shuffle)
        self.conv_in = nn.Conv2d(3 * cfg.temporal_factor * cfg.pixel_shuffle ** 2, ch[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for i in range(len(ch)):
            blocks = [_ResBlock(ch[i]) for _ in range(cfg.blocks[i])]
            if i + 1 < len(ch):
                blocks.append(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1))
            self.levels.append(nn.Sequential(*blocks))
        self.conv_out = nn.Conv2d(ch[-1], cfg.latent_channels, 3, padding=1)
        _init_deep(self)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(self.unshuffle(x))
        for level in self.levels:
            h = level(F.silu(h))
        return self.linear(x) + self.conv_out(F.silu(h))


class _Decoder(nn.Module):
    """Linear patch synthesis (C → ``sf``×``sf`` patches of the frame group) plus a
    convolutional correction whose last layer starts at zero. With ``decoder_context`` k > 0 the
    correction also reads the neighbouring latent frames (``context``: ``[N, 2k(C+1), h, w]``, see
    :meth:`TinyVideoCodec.decoder_context_of`) through ``context_in``, zero-initialised so that a
    decoder fine-tuned from one without context starts exactly where it was."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        ch = cfg.channels
        sf, group = cfg.spatial_factor, 3 * cfg.temporal_factor
        self.linear = nn.ConvTranspose2d(cfg.latent_channels, group, sf, stride=sf)
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch[-1], 3, padding=1)
        k = cfg.decoder_context
        self.context_in = nn.Conv2d(2 * k * (cfg.latent_channels + 1), ch[-1], 3, padding=1) if k else None
        self.levels = nn.ModuleList()
        for i in reversed(range(len(ch))):
            blocks: list[nn.Module] = [_ResBlock(ch[i]) for _ in range(cfg.blocks[i])]
            if i > 0:
                blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                           nn.Conv2d(ch[i], ch[i - 1], 3, padding=1)]
            self.levels.append(nn.Sequential(*blocks))
        self.conv_out = nn.Conv2d(ch[0], 3 * cfg.temporal_factor * cfg.pixel_shuffle ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.pixel_shuffle)
        _init_deep(self)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        if self.context_in is not None:
            nn.init.zeros_(self.context_in.weight)
            nn.init.zeros_(self.context_in.bias)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_in(z)
        if self.context_in is not None:
            if context is None:
                raise ValueError("this decoder reads neighbouring latent frames: pass context "
                                 "(TinyVideoCodec.decoder_context_of)")
            h = h + self.context_in(context)
        for level in self.levels:
            h = level(F.silu(h))
        return self.linear(z) + self.shuffle(self.conv_out(F.silu(h)))


class TinyVideoCodec(nn.Module):
    """Video codec with Wan's temporal layout, satisfying the core codec protocol.

    Attributes: ``latent_channels`` (C), ``temporal_factor`` (4: pixel frames per
    latent frame after the first), ``spatial_factor`` (sf). Pixel videos are
    ``[B, 3, F, H, W]`` float in [-1, 1] with ``F = 4n + 1`` and H, W multiples of
    sf; latents are ``[B, C, n + 1, H/sf, W/sf]`` (normalised, ~N(0, 1)).
    Works on any device/dtype: inputs are moved to the codec's parameters and
    results returned float32 on the input's device.
    """

    def __init__(self, config: CodecConfig | None = None) -> None:
        super().__init__()
        self.config = config or CodecConfig()
        self.encoder = _Encoder(self.config)
        self.decoder = _Decoder(self.config)
        c = self.config.latent_channels
        mean = torch.tensor(self.config.latent_mean or [0.0] * c, dtype=torch.float32)
        std = torch.tensor(self.config.latent_std or [1.0] * c, dtype=torch.float32)
        self.register_buffer("latent_mean", mean, persistent=False)
        self.register_buffer("latent_std", std, persistent=False)

    # -- protocol attributes -------------------------------------------------
    @property
    def latent_channels(self) -> int:
        """Channels of a latent frame (C)."""
        return self.config.latent_channels

    @property
    def temporal_factor(self) -> int:
        """Pixel frames per latent frame after the first (4, like Wan)."""
        return self.config.temporal_factor

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell along each spatial axis."""
        return self.config.spatial_factor

    # -- validation -------------------------------------------------------------
    def check_video(self, video: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``video`` is ``[B, 3, 4n+1, H, W]`` with H, W
        multiples of ``spatial_factor`` and values in [-1, 1] (± ``RANGE_TOLERANCE``)."""
        tf, sf = self.temporal_factor, self.spatial_factor
        if not torch.is_tensor(video) or video.ndim != 5 or video.shape[1] != 3:
            shape = tuple(video.shape) if torch.is_tensor(video) else type(video).__name__
            raise ValueError(f"expected a video tensor [B, 3, F, H, W] (RGB on dim 1), got {shape}")
        n_frames, height, width = video.shape[2:]
        if n_frames < 1 or (n_frames - 1) % tf:
            lo = (n_frames - 1) // tf * tf + 1 if n_frames > 1 else 1
            raise ValueError(
                f"the codec needs {tf}n+1 pixel frames (first frame alone, then groups of {tf}); "
                f"got {n_frames}: use {lo} or {lo + tf} frames")
        if height % sf or width % sf or height == 0 or width == 0:
            raise ValueError(
                f"frame size {height}x{width} must be a multiple of the spatial factor {sf}; "
                f"nearest valid sizes are {max(sf, round(height / sf) * sf)}x{max(sf, round(width / sf) * sf)}")
        if not video.is_floating_point():
            raise ValueError(f"video must be a float tensor in [-1, 1], got dtype {video.dtype}")
        lo_v, hi_v = float(video.min()), float(video.max())
        if not (math.isfinite(lo_v) and math.isfinite(hi_v)):
            raise ValueError("video contains NaN or infinite values")
        if lo_v < -1 - RANGE_TOLERANCE or hi_v > 1 + RANGE_TOLERANCE:
            hint = " (pixels in [0, 255]? divide by 127.5 and subtract 1)" if hi_v > 2 else ""
            raise ValueError(f"video values must be in [-1, 1], got min {lo_v:.3g}, max {hi_v:.3g}{hint}")

    # -- raw (unnormalised) coding, differentiable, used by the trainer --------
    def group_frames(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, 3, 4n+1, H, W]`` → groups ``[B*(n+1), 3*tf, H, W]``: frame 0 repeated
        ``tf`` times, then consecutive groups of ``tf`` frames (channel layout
        ``(frame, rgb)``)."""
        tf = self.temporal_factor
        first = video[:, :, :1].expand(-1, -1, tf, -1, -1)
        padded = torch.cat([first, video[:, :, 1:]], dim=2)
        return rearrange(padded, "b c (n t) h w -> (b n) (t c) h w", t=tf)

    def ungroup_frames(self, groups: torch.Tensor, batch: int) -> torch.Tensor:
        """Inverse of :meth:`group_frames`: ``[B*(n+1), 3*tf, H, W]`` → ``[B, 3, 4n+1, H, W]``;
        latent frame 0 gives the last frame of its group."""
        tf = self.temporal_factor
        video = rearrange(groups, "(b n) (t c) h w -> b c (n t) h w", b=batch, t=tf)
        return video[:, :, tf - 1:]

    def encode_raw(self, video: torch.Tensor) -> torch.Tensor:
        """Unnormalised latents ``[B, C, n+1, H/sf, W/sf]`` of a checked video (no validation)."""
        batch = video.shape[0]
        z = self.encoder(self.group_frames(video))
        return rearrange(z, "(b n) c h w -> b c n h w", b=batch)

    def decoder_context_of(self, z: torch.Tensor) -> torch.Tensor | None:
        """What the decoder reads besides each latent frame: ``None`` without ``decoder_context``; else, for
        raw latents ``[B, C, T, h, w]``, ``[B*T, 2k(C+1), h, w]`` (row ``b*T + t`` for latent frame t of
        clip b): the latent frames ``t-k .. t-1, t+1 .. t+k`` on channels, each followed by a presence
        channel (1 where that frame exists in the clip, else 0 with a zero latent). A clip is decoded
        on its own, so its first and last latent frames see no frames beyond its ends."""
        k = self.config.decoder_context
        if not k:
            return None
        frames = z.shape[2]
        padded = F.pad(z, (0, 0, 0, 0, k, k))
        present = F.pad(torch.ones_like(z[:, :1]), (0, 0, 0, 0, k, k))
        parts = []
        for offset in [*range(-k, 0), *range(1, k + 1)]:
            window = slice(k + offset, k + offset + frames)
            parts += [padded[:, :, window], present[:, :, window]]
        return rearrange(torch.cat(parts, 1), "b c n h w -> (b n) c h w")

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Video ``[B, 3, 4(T-1)+1, H, W]`` (unclamped) from unnormalised latents ``[B, C, T, h, w]``."""
        batch = z.shape[0]
        groups = self.decoder(rearrange(z, "b c n h w -> (b n) c h w"), self.decoder_context_of(z))
        return self.ungroup_frames(groups, batch)

    # -- protocol ---------------------------------------------------------------
    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Normalised latents of a video.

        ``video``: ``[B, 3, F, H, W]`` float in [-1, 1], ``F = 4n+1`` (``F = 1``
        is a single image), H and W multiples of ``spatial_factor``.
        Returns float32 ``[B, C, n+1, H/sf, W/sf]`` = ``(raw - mean) / std`` on
        the input's device. Raises ``ValueError`` for a wrong layout, frame
        count, size or value range (the message says what to use instead).
        """
        self.check_video(video)
        p = self._param()
        raw = self.encode_raw(video.to(device=p.device, dtype=p.dtype).clamp(-1, 1))
        mean = self.latent_mean.view(1, -1, 1, 1, 1).to(raw)
        std = self.latent_std.view(1, -1, 1, 1, 1).to(raw)
        return ((raw - mean) / std).float().to(video.device)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Video of normalised latents.

        ``latents``: ``[B, C, T, h, w]`` (C = ``latent_channels``, T ≥ 1).
        Returns float32 ``[B, 3, 4(T-1)+1, h*sf, w*sf]`` clamped to [-1, 1], on
        the latents' device. Raises ``ValueError`` for a wrong layout/channel count.
        """
        if not torch.is_tensor(latents) or latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            shape = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
            raise ValueError(
                f"expected latents [B, {self.latent_channels}, T, h, w] for this codec, got {shape}"
                " (latents of another VAE?)")
        if latents.shape[2] < 1 or 0 in latents.shape[3:]:
            raise ValueError(f"latents have an empty dimension: {tuple(latents.shape)}")
        p = self._param()
        z = latents.to(device=p.device, dtype=p.dtype)
        raw = z * self.latent_std.view(1, -1, 1, 1, 1).to(z) + self.latent_mean.view(1, -1, 1, 1, 1).to(z)
        return self.decode_raw(raw).clamp(-1, 1).float().to(latents.device)

    @torch.no_grad()
    def init_linear_pca(self, groups: torch.Tensor) -> None:
        """Set both linear patch transforms to the PCA of ``groups``' patches.

        ``groups``: ``[N, 3*tf, H, W]`` pixel-frame groups in [-1, 1] (layout of
        :meth:`group_frames`), H and W multiples of ``spatial_factor``. Patches
        (``sf``×``sf`` per group channel) are centred by the per-channel mean
        (a constant the transposed convolution's bias can add back) and projected
        on their top ``latent_channels`` principal directions; the decoder's
        weight is the transposed basis. With the convolutional corrections at
        zero (their initial state) the codec is then exactly this PCA codec.
        Raises ``ValueError`` if there are fewer patches than latent channels.
        """
        sf, c = self.spatial_factor, self.latent_channels
        patches = rearrange(groups.double(), "n k (h p) (w q) -> (n h w) k (p q)", p=sf, q=sf)
        if patches.shape[0] < c:
            raise ValueError(f"need at least {c} patches to fit the PCA, got {patches.shape[0]}")
        channel_mean = patches.mean(dim=(0, 2))  # [k]
        centred = (patches - channel_mean[None, :, None]).flatten(1)
        _, _, vt = torch.linalg.svd(centred, full_matrices=False)
        basis = vt[:c]  # [C, k*sf*sf], orthonormal rows
        offset = channel_mean.repeat_interleave(sf * sf)  # [k*sf*sf]
        self.encoder.linear.weight.copy_(basis.reshape(c, -1, sf, sf).float())
        self.encoder.linear.bias.copy_((-(basis @ offset)).float())
        self.decoder.linear.weight.copy_(basis.reshape(c, -1, sf, sf).float())  # [in=C, out=k, sf, sf]
        self.decoder.linear.bias.copy_(channel_mean.float())

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-channel latent statistics (``[C]`` each, std > 0) in the buffers and config."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.numel() != self.latent_channels or std.numel() != self.latent_channels:
            raise ValueError(f"need {self.latent_channels} means and stds, got {mean.numel()} and {std.numel()}")
        if float(std.min()) <= 0:
            raise ValueError("latent std must be > 0")
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std)
        d = self.config.to_dict()
        d["latent_mean"] = [float(v) for v in mean]
        d["latent_std"] = [float(v) for v in std]
        self.config = CodecConfig.from_dict(d)

    # -- persistence ------------------------------------------------------------
    def save(self, directory: str | Path, name: str = "codec") -> tuple[Path, Path]:
        """Write ``<name>.safetensors`` (float32 weights) and ``<name>.json``
        (config incl. normalisation) into ``directory``; returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = directory / f"{name}.safetensors"
        cfg = directory / f"{name}.json"
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(weights), metadata={"format": "tempomaster-tiny-codec"})
        cfg.write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        return weights, cfg

    @classmethod
    def load(cls, directory: str | Path, name: str = "codec", *, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> "TinyVideoCodec":
        """Load what :meth:`save` wrote. Raises ``FileNotFoundError`` naming the
        missing file, ``ValueError`` if config and weights disagree."""
        directory = Path(directory)
        weights = directory / f"{name}.safetensors"
        cfg = directory / f"{name}.json"
        for path in (weights, cfg):
            if not path.is_file():
                raise FileNotFoundError(
                    f"codec file {path} not found; train one with "
                    "`python -m tempomaster_core.training.train_codec --out DIR`")
        codec = cls(CodecConfig.from_dict(json.loads(cfg.read_text())))
        try:
            codec.load_state_dict(load_file(str(weights)))
        except RuntimeError as err:
            raise ValueError(f"codec weights {weights} do not match {cfg}: {err}") from err
        return codec.to(device=device, dtype=dtype).eval()


def psnr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """PSNR in dB of two videos in [-1, 1] (peak-to-peak 2, i.e. the usual PSNR of
    [0, 1] images): ``10·log10(4 / MSE)`` over all elements."""
    mse = float(((reference.double() - estimate.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


__all__ = ["CodecConfig", "TinyVideoCodec", "psnr", "RANGE_TOLERANCE"]
