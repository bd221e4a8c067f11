"""Stand-ins for ComfyUI objects, for the node tests and the ComfyUI integration test.

- :class:`FakeWanVAE` behaves like ComfyUI's ``comfy.sd.VAE`` holding the Wan 2.1
  VAE: IMAGE layouts in 0..1, **raw** latents, ``encode_tiled``/``decode_tiled``,
  ``latent_channels``/``latent_dim``/compression getters. Inside it is the test
  ``ToyCodec``; its raw latents are the toy codec's latents de-normalized with the
  Wan 2.1 mean/std (typed again here, independently of ``nodes/vae_adapter.py``),
  so a correct adapter recovers the toy latents exactly.
- :class:`FakeCLIP` answers ``tokenize``/``encode_from_tokens_scheduled`` like a
  umT5 ``CLIP`` does for ``CLIPTextEncode``: ``[[tensor [1, max(min_len, n+1), dim],
  {"pooled_output": None}]]`` with zeroed padding, deterministic per text.
- :func:`comfyui_validation_errors` reports a node's inputs as ComfyUI 0.3.64's queue-time
  validation does (its rules written out from ``execution.validate_inputs``, see the function).
- :func:`install_fake_comfy` puts minimal ``comfy.*`` and ``folder_paths`` modules
  into ``sys.modules`` (through pytest's ``monkeypatch``) to exercise the nodes'
  ComfyUI code paths without ComfyUI.
"""

from __future__ import annotations

import inspect
import sys
import types
import zlib

import torch

from toy_codec import ToyCodec

WAN_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
            0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
WAN_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
           3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


class FakeWanVAE:
    """ComfyUI-VAE-shaped wrapper of :class:`ToyCodec` (see module doc).

    Attributes:
        calls: names of the methods called, in order (``encode``, ``encode_tiled``, ...).
        tiled_args: keyword arguments of the tiled calls.
    """

    latent_dim = 3

    def __init__(self, latent_channels: int = 16, temporal: int = 4, spatial: int = 8):
        self.codec = ToyCodec(latent_channels, temporal, spatial)
        self.latent_channels = latent_channels
        self._temporal, self._spatial = temporal, spatial
        self.mean = torch.tensor(WAN_MEAN[:latent_channels] + [0.0] * max(0, latent_channels - 16)).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(WAN_STD[:latent_channels] + [1.0] * max(0, latent_channels - 16)).view(1, -1, 1, 1, 1)
        self.calls: list[str] = []
        self.tiled_args: list[dict] = []

    def spacial_compression_encode(self) -> int:
        return self._spatial

    def temporal_compression_decode(self) -> int:
        return self._temporal

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        # like comfy.sd.VAE.vae_encode_crop_pixels: every axis of shape[1:-1] is cropped
        # to a multiple of the spatial factor (for a 5-D batch that includes the frames)
        for axis in range(1, pixels.ndim - 1):
            size = pixels.shape[axis]
            keep = size // self._spatial * self._spatial
            if keep != size:
                pixels = pixels.narrow(axis, (size % self._spatial) // 2, keep)
        if pixels.ndim == 4:
            pixels = pixels.unsqueeze(0)
        frames = pixels.shape[1]
        pixels = pixels[:, : (frames - 1) // self._temporal * self._temporal + 1]  # Wan drops frames beyond 4k+1
        video = pixels.movedim(-1, 1) * 2.0 - 1.0  # [B, 3, F, H, W] in [-1, 1]
        return self.codec.encode(video) * self.std + self.mean

    def _decode(self, raw: torch.Tensor) -> torch.Tensor:
        video = self.codec.decode((raw - self.mean) / self.std)
        return ((video + 1.0) * 0.5).movedim(1, -1)  # [B, F, H, W, 3] in 0..1

    def encode(self, pixels):
        self.calls.append("encode")
        return self._encode(pixels)

    def decode(self, raw):
        self.calls.append("decode")
        return self._decode(raw)

    def encode_tiled(self, pixels, tile_x=None, tile_y=None, overlap=None, tile_t=None, overlap_t=None):
        self.calls.append("encode_tiled")
        self.tiled_args.append(dict(tile_x=tile_x, tile_y=tile_y, overlap=overlap, tile_t=tile_t, overlap_t=overlap_t))
        assert pixels.ndim == 4, "ComfyUI's encode_tiled takes one clip [F, H, W, 3]"
        return self._encode(pixels)

    def decode_tiled(self, raw, tile_x=None, tile_y=None, overlap=None, tile_t=None, overlap_t=None):
        self.calls.append("decode_tiled")
        self.tiled_args.append(dict(tile_x=tile_x, tile_y=tile_y, overlap=overlap, tile_t=tile_t, overlap_t=overlap_t))
        return self._decode(raw)


class FakeCLIP:
    """CLIPTextEncode-compatible text encoder stand-in (see module doc).

    Args:
        dim: embedding width (the tiny DiT's ``text_dim``).
        min_len: padded length (umT5 in ComfyUI: 512).
    """

    def __init__(self, dim: int = 24, min_len: int = 8):
        self.dim, self.min_len = dim, min_len

    def tokenize(self, text: str):
        return str(text).split()

    def encode_from_tokens_scheduled(self, tokens, **_):
        n = len(tokens)
        gen = torch.Generator().manual_seed(zlib.crc32(" ".join(tokens).encode()))
        out = torch.zeros(1, max(self.min_len, n + 1), self.dim)
        out[:, : n + 1] = torch.randn(1, n + 1, self.dim, generator=gen)
        return [[out, {"pooled_output": None}]]


def conditioning(length: int = 7, dim: int = 24, seed: int = 0, tokens: int | None = None):
    """A CONDITIONING ``[[tensor [1, length, dim], {"pooled_output": None}]]``; rows past
    ``tokens`` (default: all) are zero, like umT5's padding."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, length, dim, generator=gen)
    if tokens is not None:
        x[:, tokens:] = 0
    return [[x, {"pooled_output": None}]]


class FakeProgressBar:
    """Records ``update_absolute`` calls like ``comfy.utils.ProgressBar``."""

    instances: list["FakeProgressBar"] = []

    def __init__(self, total, node_id=None):
        self.total = total
        self.updates: list[tuple] = []
        FakeProgressBar.instances.append(self)

    def update_absolute(self, value, total=None, preview=None):
        self.updates.append((value, total, preview))


class Interrupted(Exception):
    """Stand-in of ``comfy.model_management.InterruptProcessingException``."""


def install_fake_comfy(monkeypatch, interrupt_after: int | None = None, preview_method: str = "auto",
                       folders: dict | None = None):
    """Install fake ``comfy.model_management``, ``comfy.utils``, ``comfy.cli_args`` and
    ``folder_paths`` modules for one test.

    Args:
        interrupt_after: raise :class:`Interrupted` from
            ``throw_exception_if_processing_interrupted`` on that call number (1-based).
        preview_method: value of ``args.preview_method`` ("none" disables previews).
        folders: ``{folder: {name: full path}}`` served by ``folder_paths``.

    Returns:
        a namespace with ``mm`` (the model_management module; ``mm.freed`` lists
        ``free_memory`` calls, ``mm.checks`` counts interrupt checks).
    """
    FakeProgressBar.instances = []
    comfy = types.ModuleType("comfy")
    mm = types.ModuleType("comfy.model_management")
    mm.freed, mm.checks, mm.emptied = [], [0], [0]
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.free_memory = lambda bytes_needed, device, keep_loaded=(): mm.freed.append((bytes_needed, device))
    mm.soft_empty_cache = lambda force=False: mm.emptied.__setitem__(0, mm.emptied[0] + 1)
    mm.InterruptProcessingException = Interrupted

    def check():
        mm.checks[0] += 1
        if interrupt_after is not None and mm.checks[0] == interrupt_after:
            raise Interrupted("cancelled by the user")

    mm.throw_exception_if_processing_interrupted = check
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = FakeProgressBar
    cli = types.ModuleType("comfy.cli_args")
    cli.args = types.SimpleNamespace(preview_method=preview_method, preview_size=256)
    fp = types.ModuleType("folder_paths")
    table = folders or {}
    fp.get_filename_list = lambda folder: sorted(table.get(folder, {}))
    fp.get_full_path = lambda folder, name: table.get(folder, {}).get(name)
    # ComfyUI lists the legacy folder first for diffusion_models
    fp.get_folder_paths = lambda folder: (["/comfy/models/unet"] if folder == "diffusion_models" else []) + [
        f"/comfy/models/{folder}"]
    comfy.model_management, comfy.utils, comfy.cli_args = mm, utils, cli
    for name, module in {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils,
                         "comfy.cli_args": cli, "folder_paths": fp}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(mm=mm, utils=utils, cli=cli, folder_paths=fp)


def comfyui_validation_errors(node_class, inputs: dict) -> list[tuple[str, str, str]]:
    """``[(input name, error type, details)]`` that ComfyUI 0.3.64 reports for one node's ``inputs``
    (an API-format ``inputs`` dict; a ``[node id, slot]`` list is a link) when the prompt is queued.

    The rules, as ``execution.validate_inputs`` applies them to a V1 node:

    - a required input that is absent: ``required_input_missing``;
    - a value is converted to the input's type (``int``/``float``/``str``/``bool``); a failure is
      ``invalid_input_type``;
    - for an input **not** named in ``VALIDATE_INPUTS``'s signature: ``min``/``max`` and the
      choices of a list type (``value_smaller_than_min``, ``value_bigger_than_max``,
      ``value_not_in_list``);
    - ``VALIDATE_INPUTS`` is called with only the inputs its signature names that the prompt has
      (a linked one as ``None``); a result other than ``True`` becomes one
      ``custom_validation_failed`` error **per input passed**, each with details ``"name - message"``.
    """
    declared = node_class.INPUT_TYPES()
    required = declared.get("required", {})
    specs = {**required, **declared.get("optional", {})}
    validate = getattr(node_class, "VALIDATE_INPUTS", None)
    named = set(inspect.getfullargspec(validate).args) if validate is not None else set()
    converters = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
    errors, values = [], {}
    for name, (kind, *rest) in specs.items():
        options = rest[0] if rest else {}
        if name not in inputs:
            if name in required:
                errors.append((name, "required_input_missing", name))
            continue
        value = inputs[name]
        if isinstance(value, list):  # a link: its value is not known at queue time
            values[name] = None
            continue
        try:
            value = converters[kind](value) if isinstance(kind, str) and kind in converters else value
        except (TypeError, ValueError) as err:
            errors.append((name, "invalid_input_type", f"{name}, {value}, {err}"))
            continue
        values[name] = value
        if name in named:
            continue
        if "min" in options and value < options["min"]:
            errors.append((name, "value_smaller_than_min", name))
        elif "max" in options and value > options["max"]:
            errors.append((name, "value_bigger_than_max", name))
        elif isinstance(kind, list) and value not in kind:
            errors.append((name, "value_not_in_list", f"{name}: '{value}' not in {kind}"))
    passed = {name: value for name, value in values.items() if name in named}
    if named:
        result = validate(**passed)
        if result is not True:
            errors.extend((name, "custom_validation_failed", f"{name} - {result}") for name in passed)
    return errors
