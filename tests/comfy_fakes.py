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
  ComfyUI code paths without ComfyUI; with ``managed=True`` also ``comfy.model_patcher``
  (:class:`FakeModelPatcher`), ``comfy.lora.load_lora``, ``comfy.ops`` and
  ``model_management.load_models_gpu``, answering the calls ``nodes/comfy_model.py`` makes
  the way ComfyUI 0.3.6x does (checked against its source, not run against it).
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


class FakeModelPatcher:
    """Stand-in of ``comfy.model_patcher.ModelPatcher`` for the calls the pack makes.

    ``add_patches`` stores ``(strength, patch)`` per model key (keys the model lacks are not
    taken, as ComfyUI does); ``patch_model(device)`` writes ``W + strength * (alpha / rank) * up
    @ down`` (float32, then the weight's dtype) into the weights, keeping backups, and sets
    ``model.device``; ``unpatch_model`` restores them. Clones share the model.
    """

    def __init__(self, model, load_device, offload_device, size=0):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.patches: dict = {}
        self.backup: dict = {}
        if not hasattr(model, "device"):
            model.device = offload_device

    def clone(self):
        other = FakeModelPatcher(self.model, self.load_device, self.offload_device)
        other.patches = {k: list(v) for k, v in self.patches.items()}
        return other

    def is_clone(self, other):
        return getattr(other, "model", None) is self.model

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        keys = set(self.model.state_dict())
        taken = [k for k in patches if k in keys]
        for key in taken:
            self.patches.setdefault(key, []).append((strength_patch, patches[key]))
        return taken

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for key, patch_list in self.patches.items():
                weight = params[key]
                self.backup.setdefault(key, weight.detach().clone())
                value = weight.float()
                for strength, (kind, (up, down, alpha)) in patch_list:
                    assert kind == "lora"
                    scale = alpha / down.shape[0] if alpha is not None else 1.0
                    value = value + strength * scale * (up.float() @ down.float()).reshape(value.shape)
                weight.copy_(value.to(weight.dtype))
        if device_to is not None:
            self.model.to(device_to)
            self.model.device = device_to
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for key, weight in self.backup.items():
                params[key].copy_(weight)
        self.backup.clear()


def fake_load_lora(lora, to_load, log_missing=True):
    """Stand-in of ``comfy.lora.load_lora`` for plain LoRAs: ``{model key: ("lora", (up, down, alpha))}``."""
    patches = {}
    for prefix, key in to_load.items():
        for up_name, down_name in (("lora_up.weight", "lora_down.weight"), ("lora_B.weight", "lora_A.weight")):
            if f"{prefix}.{up_name}" in lora:
                alpha = lora.get(f"{prefix}.alpha")
                patches[key] = ("lora", (lora[f"{prefix}.{up_name}"], lora[f"{prefix}.{down_name}"],
                                         None if alpha is None else float(alpha)))
    return patches


def _fake_ops(marker: str):
    """A ``comfy.ops``-like namespace: the core's casting layers, subclassed and tagged ``marker``."""
    from tempomaster_core.ops import CastConv3d, CastLayerNorm, CastLinear  # (not at import: the ComfyUI scaffold)

    return types.SimpleNamespace(**{
        name: type(f"{marker}{name}", (base,), {"comfy_cast_weights": True, "ops_marker": marker})
        for name, base in (("Linear", CastLinear), ("Conv3d", CastConv3d), ("LayerNorm", CastLayerNorm))
    })


def install_fake_comfy(monkeypatch, interrupt_after: int | None = None, preview_method: str = "auto",
                       folders: dict | None = None, managed: bool = False):
    """Install fake ``comfy.model_management``, ``comfy.utils``, ``comfy.cli_args`` and
    ``folder_paths`` modules for one test.

    Args:
        interrupt_after: raise :class:`Interrupted` from
            ``throw_exception_if_processing_interrupted`` on that call number (1-based).
        preview_method: value of ``args.preview_method`` ("none" disables previews).
        folders: ``{folder: {name: full path}}`` served by ``folder_paths``.
        managed: also install ``comfy.model_patcher``, ``comfy.lora``, ``comfy.ops`` and
            ``mm.load_models_gpu`` (``mm.loads`` lists ``(patcher, memory_required)``;
            ``ops.calls`` lists the ``scaled_fp8_ops`` arguments).

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
    modules = {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils, "comfy.cli_args": cli,
               "folder_paths": fp}
    extra = {}
    if managed:
        patcher = types.ModuleType("comfy.model_patcher")
        patcher.ModelPatcher = FakeModelPatcher
        lora = types.ModuleType("comfy.lora")
        lora.load_lora = fake_load_lora
        ops = types.ModuleType("comfy.ops")
        ops.manual_cast = _fake_ops("manual_cast")
        ops.calls = []
        ops.scaled_fp8_ops = lambda **kwargs: ops.calls.append(kwargs) or _fake_ops("scaled_fp8")
        mm.loads, mm.current = [], []

        def load_models_gpu(models, memory_required=0, **_):
            for model in models:
                mm.loads.append((model, memory_required))
                for old in [m for m in mm.current if m.is_clone(model) and m is not model]:
                    old.unpatch_model()  # another clone of the same DiT was loaded: its patches go
                    mm.current.remove(old)
                if model not in mm.current:
                    model.patch_model(model.load_device)
                    mm.current.append(model)

        mm.load_models_gpu = load_models_gpu
        comfy.model_patcher, comfy.lora, comfy.ops = patcher, lora, ops
        extra = {"comfy.model_patcher": patcher, "comfy.lora": lora, "comfy.ops": ops}
        modules.update(extra)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(mm=mm, utils=utils, cli=cli, folder_paths=fp, ops=extra.get("comfy.ops"))


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
