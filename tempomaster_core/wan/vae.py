"""The Wan 2.1 VAE on diffusers' ``AutoencoderKLWan``, as the core's :class:`~tempomaster_core.protocols.VideoCodec`.

Checkpoint layout: ComfyUI's ``wan_2.1_vae.safetensors`` and the Wan 2.1 release's ``Wan2.1_VAE.pth`` (what
the reference loads) hold the same names, those of the Wan VAE code (``vae_layout == "wan"``):
``encoder.conv1``, ``encoder.downsamples.{k}`` (a flat list: per resolution ``num_res_blocks`` residual blocks,
then a ``Resample`` except after the last), ``encoder.middle.{0,1,2}`` (residual, attention, residual),
``encoder.head.{0,2}`` (norm, conv), ``conv1`` / ``conv2`` (the quant convs), and the decoder likewise with
``decoder.upsamples.{k}`` (per resolution ``num_res_blocks + 1`` residual blocks, then a ``Resample`` except
after the last). Inside a residual block ``residual.0`` / ``residual.3`` are the norms (``gamma``) and
``residual.2`` / ``residual.6`` the convs, ``shortcut`` the 1x1x1 conv. :func:`diffusers_names` maps them onto
diffusers' module tree (``conv_in``, ``down_blocks``, ``mid_block.resnets`` / ``attentions``, ``norm_out``,
``conv_out``, ``quant_conv``, ``post_quant_conv``, ``up_blocks.{i}.resnets.{j}`` / ``upsamplers.0``; ``norm1``,
``conv1``, ``norm2``, ``conv2``, ``conv_shortcut``).

The configuration is ``wan21_vae.json`` (next to this module); the sizes the shapes show (base width, latent
channels, residual blocks per resolution, width multipliers, which down-samplings are temporal) replace its
values (:func:`infer_vae_config`), so a narrower VAE of the same design loads too (the tests use one). The
latent statistics are :mod:`tempomaster_core.wan.latents`'; the codec normalises with them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping, Optional, Union

import torch

from ..loading import CheckpointError, key_problems, open_checkpoint
from . import latents as wan_latents
from .extra import require_wan_extra
from .files import VAE_HINT, ModelFileError

CONFIG_FILE = Path(__file__).with_name("wan21_vae.json")
"""diffusers ``AutoencoderKLWan`` configuration of the Wan 2.1 VAE (latent statistics left to
:mod:`~tempomaster_core.wan.latents`)."""

_RESIDUAL = ((".residual.0.gamma", ".norm1.gamma"), (".residual.2.", ".conv1."), (".residual.3.gamma", ".norm2.gamma"),
             (".residual.6.", ".conv2."), (".shortcut.", ".conv_shortcut."))
_TOP = (("encoder.conv1.", "encoder.conv_in."), ("decoder.conv1.", "decoder.conv_in."), ("conv1.", "quant_conv."),
        ("conv2.", "post_quant_conv."), ("encoder.head.0.", "encoder.norm_out."), ("encoder.head.2.", "encoder.conv_out."),
        ("decoder.head.0.", "decoder.norm_out."), ("decoder.head.2.", "decoder.conv_out."))
_MIDDLE = {"0": "mid_block.resnets.0", "1": "mid_block.attentions.0", "2": "mid_block.resnets.1"}


def vae_layout(names) -> Optional[str]:
    """``"wan"`` (ComfyUI's and the release's names), ``"diffusers"`` (diffusers' own names) or ``None``."""
    names = set(names)
    if "decoder.middle.0.residual.0.gamma" in names:
        return "wan"
    if "decoder.mid_block.resnets.0.norm1.gamma" in names:
        return "diffusers"
    return None


def diffusers_name(name: str, num_res_blocks: int) -> str:
    """The diffusers name of one Wan-layout VAE tensor name (see the module doc).

    Args:
        name: e.g. ``"decoder.upsamples.3.resample.1.weight"``.
        num_res_blocks: residual blocks per resolution of the encoder (the decoder has one more).

    Raises:
        ModelFileError: a name outside the Wan 2.1 VAE layout.
    """
    for old, new in _TOP:
        if name.startswith(old):
            return new + name[len(old):]
    match = re.fullmatch(r"(encoder|decoder)\.(middle|downsamples|upsamples)\.(\d+)(\..+)", name)
    if match is None:
        raise ModelFileError(f"{name!r} is not a tensor of the Wan 2.1 VAE")
    part, group, index, rest = match.group(1), match.group(2), int(match.group(3)), match.group(4)
    if group == "middle":
        if str(index) not in _MIDDLE:
            raise ModelFileError(f"{name!r} is not a tensor of the Wan 2.1 VAE")
        module = _MIDDLE[str(index)]
    elif group == "downsamples":
        module = f"down_blocks.{index}"
    else:
        per_block = num_res_blocks + 2  # num_res_blocks + 1 residual blocks, then the up-sampler
        block, slot = divmod(index, per_block)
        module = f"up_blocks.{block}." + (f"resnets.{slot}" if slot < per_block - 1 else "upsamplers.0")
    for old, new in _RESIDUAL:
        if rest.startswith(old):
            rest = new + rest[len(old):]
            break
    return f"{part}.{module}{rest}"


def _index_keys(shapes: Mapping[str, tuple], prefix: str) -> dict[int, set]:
    """``{k: {rest of the names}}`` for the names ``<prefix>.<k>.<rest>``."""
    out: dict[int, set] = {}
    for name in shapes:
        match = re.fullmatch(re.escape(prefix) + r"\.(\d+)\.(.+)", name)
        if match:
            out.setdefault(int(match.group(1)), set()).add(match.group(2))
    return out


def infer_vae_config(shapes: Mapping[str, tuple]) -> dict:
    """``AutoencoderKLWan`` arguments: :data:`CONFIG_FILE` with the sizes a Wan-layout VAE's shapes show.

    Read from the shapes: ``base_dim`` (``encoder.conv1.weight`` rows), ``z_dim`` (``conv2.weight`` rows),
    ``num_res_blocks`` (the encoder's residual blocks before its first ``Resample``), ``dim_mult`` (each
    resolution's residual width / ``base_dim``), ``temperal_downsample`` (a ``Resample`` with a ``time_conv``).

    Raises:
        ModelFileError: a tensor the sizes are read from is missing, or the down path holds attention blocks
            (not the Wan 2.1 design).
    """
    def shape(name: str) -> tuple:
        if name not in shapes:
            raise ModelFileError(f"the VAE file lacks {name!r}; it is incomplete or not the Wan 2.1 VAE")
        return tuple(shapes[name])

    config = json.loads(CONFIG_FILE.read_text())
    base = shape("encoder.conv1.weight")[0]
    down = _index_keys(shapes, "encoder.downsamples")
    if any("to_qkv.weight" in rest for rest in down.values()):
        raise ModelFileError("the VAE has attention blocks in its down path: not the Wan 2.1 VAE design")
    resamples = sorted(k for k, rest in down.items() if "resample.1.weight" in rest)
    if not resamples:
        raise ModelFileError("the VAE file has no down-sampling layers: not the Wan 2.1 VAE")
    blocks = resamples[0]
    dim_mult = [shape(f"encoder.downsamples.{level * (blocks + 1)}.residual.2.weight")[0] // base
                for level in range(len(resamples) + 1)]
    config.update(base_dim=base, z_dim=shape("conv2.weight")[0], num_res_blocks=blocks, dim_mult=dim_mult,
                  temperal_downsample=[any(r.startswith("time_conv.") for r in down[k]) for k in resamples])
    return config


def _open(path):
    try:
        return open_checkpoint(path, hint=VAE_HINT)
    except CheckpointError as err:
        raise ModelFileError(str(err)) from None


def read_vae_file(path: Union[str, Path]) -> dict:
    """Check a VAE file without reading its weights; returns its ``AutoencoderKLWan`` arguments.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a Wan-layout VAE, incomplete, or not 16 latent channels (e.g. the Wan 2.2 VAE).
    """
    ckpt = _open(path)
    try:
        layout = vae_layout(ckpt.shapes)
        if layout != "wan":
            what = "in diffusers' key layout (use wan_2.1_vae.safetensors or Wan2.1_VAE.pth)" if layout else \
                f"not the Wan 2.1 VAE (keys such as {sorted(ckpt.shapes)[:3]})"
            raise ModelFileError(f"{path} is {what}. {VAE_HINT}")
        z_dim = tuple(ckpt.shapes.get("conv2.weight", (0,)))[0]
        if z_dim != wan_latents.WAN21_LATENT_CHANNELS:
            raise ModelFileError(
                f"{path} is a VAE with {z_dim} latent channels; TempoMaster needs the Wan 2.1 VAE "
                f"({wan_latents.WAN21_LATENT_CHANNELS} channels; the Wan 2.2 VAE has 48 and does not fit). {VAE_HINT}")
        return infer_vae_config(ckpt.shapes)
    finally:
        ckpt.close()


def load_wan_vae(path: Union[str, Path], *, dtype: torch.dtype = torch.bfloat16,
                 device: Union[str, torch.device] = "cpu"):
    """Build diffusers' ``AutoencoderKLWan`` from a Wan-layout VAE checkpoint (:func:`diffusers_name`),
    tensor by tensor onto a meta-built module (each cast to ``dtype`` and moved to ``device``).

    Raises:
        MissingExtraError: diffusers is not installed.
        ModelFileError: see :func:`read_vae_file`; tensors that do not fit the module the shapes describe.
    """
    require_wan_extra("the Wan 2.1 VAE")
    from diffusers import AutoencoderKLWan

    config = read_vae_file(path)
    ckpt = _open(path)
    try:
        names = {diffusers_name(k, config["num_res_blocks"]): k for k in ckpt.shapes}
        with torch.device("meta"):
            vae = AutoencoderKLWan(**config)
        expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
        problems = key_problems(expected, {new: ckpt.shapes[old] for new, old in names.items()})
        if problems:
            raise ModelFileError(f"{path}: the VAE file does not fit AutoencoderKLWan: {'; '.join(problems)}")
        tensors = {new: ckpt.get(old).to(dtype=dtype, device=device) for new, old in names.items()}
        vae.load_state_dict(tensors, strict=True, assign=True)
    finally:
        ckpt.close()
    vae.requires_grad_(False)
    return vae.eval()


class WanVAECodec:
    """diffusers' ``AutoencoderKLWan`` (Wan 2.1) seen as the core codec: ``[-1, 1]`` pixels <-> normalized latents.

    Encoding takes the posterior mean (as the reference does) and normalizes it with the Wan 2.1 statistics;
    decoding denormalizes, decodes and clamps to ``[-1, 1]``. Clips are coded one at a time (diffusers'
    slicing, as the reference loops over videos), so memory is that of one clip.

    Args:
        vae: the ``AutoencoderKLWan`` (:func:`load_wan_vae`).

    Attributes:
        latent_channels (16), temporal_factor (4), spatial_factor (8); ``device`` (where inputs go) and
        ``dtype`` (the VAE's parameter dtype, inputs are cast to it).

    Raises:
        ValueError: a VAE with another latent width or compression than Wan 2.1's.
    """

    latent_channels = wan_latents.WAN21_LATENT_CHANNELS
    temporal_factor = wan_latents.WAN21_TEMPORAL_FACTOR
    spatial_factor = wan_latents.WAN21_SPATIAL_FACTOR

    def __init__(self, vae):
        z_dim = int(vae.config.z_dim)
        if z_dim != self.latent_channels:
            raise ValueError(f"the VAE has {z_dim} latent channels; the Wan 2.1 VAE has {self.latent_channels}")
        self.vae = vae
        self.vae.enable_slicing()
        parameter = next(vae.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels float ``[B, 3, 4n+1, H, W]`` in ``[-1, 1]`` (H, W multiples of 8) -> normalized latents
        float32 ``[B, 16, n+1, H/8, W/8]`` on the codec's device.

        Raises:
            ValueError: a shape the VAE cannot code.
        """
        wan_latents.check_pixels(video, self.temporal_factor, self.spatial_factor)
        raw = self.vae.encode(video.to(device=self.device, dtype=self.dtype)).latent_dist.mode()
        return wan_latents.normalize(raw)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents float ``[B, 16, T, h, w]`` -> pixels float32 ``[B, 3, 4(T-1)+1, 8h, 8w]`` in
        ``[-1, 1]`` on the codec's device.

        Raises:
            ValueError: not ``[B, 16, T, h, w]``.
        """
        wan_latents.check_latents(latents, self.latent_channels)
        raw = wan_latents.denormalize(latents.to(self.device)).to(self.dtype)
        return self.vae.decode(raw).sample.to(torch.float32).clamp(-1.0, 1.0)


__all__ = ["CONFIG_FILE", "WanVAECodec", "diffusers_name", "infer_vae_config", "load_wan_vae", "read_vae_file",
           "vae_layout"]
