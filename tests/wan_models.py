"""Tiny stand-ins for the released 14B set, for tests (CPU, milliseconds).

* Header-only fakes (no library needed): checkpoint files whose key names and shapes look like a umT5 encoder
  or a Wan VAE, for the checks that read headers only (:func:`write_tensors`, :func:`fake_umt5_reference`,
  :func:`fake_wan_vae`).
* Real tiny models built by the libraries the loaders use (transformers' ``UMT5EncoderModel``, diffusers'
  ``AutoencoderKLWan``), seeded random, and a SentencePiece tokenizer trained on a few captions; saved in
  ComfyUI's and the reference's file layouts (:func:`write_model_set`). The reference layouts are written
  from the key names of the reference code (``wan/modules/t5.py`` / ``vae.py`` of Wan 2.1, as the reference
  repository's ``wan_video_text_encoder.py`` / ``wan_video_vae.py``), independently of the loaders' tables.
"""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from tempomaster_core.loading import save_dit
from tiny_models import make_tiny_dit, randomize_

CAPTIONS = ["a red fox runs across the snowy field", "the camera pans over a city at night",
            "waves crash on the rocky shore at sunset", "a small boat drifts on a calm lake"] * 8

T5_SIZES = dict(d_model=24, d_kv=8, num_heads=3, d_ff=40, num_layers=2, relative_attention_num_buckets=8)
"""The tiny umT5's sizes (its width 24 is the tiny DiT's text_dim)."""


def write_tensors(path: Path, shapes: dict) -> Path:
    """A safetensors file with zero tensors of the given ``{name: shape}``."""
    save_file({name: torch.zeros(shape) for name, shape in shapes.items()}, str(path))
    return path


def fake_umt5_reference(path: Path, d_model: int = 24) -> Path:
    """Header of a reference-layout umT5 file (the tensors its config is read from), without a tokenizer."""
    return write_tensors(path, {"token_embedding.weight": (16, d_model), "blocks.0.attn.q.weight": (24, d_model),
                                "blocks.0.pos_embedding.embedding.weight": (8, 3), "blocks.0.ffn.gate.0.weight": (40, d_model),
                                "norm.weight": (d_model,)})


def fake_wan_vae(path: Path, z_dim: int = 16) -> Path:
    """Header of a Wan-layout VAE (base width 4, 2 residual blocks per resolution, 4 resolutions)."""
    shapes = {"encoder.conv1.weight": (4, 3, 3, 3, 3), "conv2.weight": (z_dim, z_dim, 1, 1, 1),
              "decoder.middle.0.residual.0.gamma": (16, 1, 1, 1)}
    for level, width in enumerate((4, 8, 16, 16)):
        start = level * 3
        shapes[f"encoder.downsamples.{start}.residual.2.weight"] = (width, width, 3, 3, 3)
        if level < 3:
            shapes[f"encoder.downsamples.{start + 2}.resample.1.weight"] = (width, width, 3, 3)
    return write_tensors(path, shapes)


# -- real tiny models (need the `wan` extra) ----------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def spiece_model() -> bytes:
    """A SentencePiece unigram model trained on :data:`CAPTIONS` (pad 0, end 1, unknown 2, as umT5's)."""
    import sentencepiece

    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CAPTIONS), model_writer=out, vocab_size=48, model_type="unigram", pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return out.getvalue()


def write_tokenizer_folder(root: Path) -> Path:
    """A transformers tokenizer folder (``tokenizer.json``) with the vocabulary of :func:`spiece_model`, as the
    release's ``google/umt5-xxl`` folder holds one."""
    import sentencepiece
    from transformers import T5Tokenizer

    processor = sentencepiece.SentencePieceProcessor(model_proto=spiece_model())
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(str(root))
    return root


def tiny_umt5(seed: int = 0):
    """transformers ``UMT5EncoderModel`` of :data:`T5_SIZES` with the tokenizer's vocabulary, seeded random."""
    import sentencepiece
    from transformers import UMT5Config, UMT5EncoderModel

    vocab = sentencepiece.SentencePieceProcessor(model_proto=spiece_model()).get_piece_size()
    model = UMT5EncoderModel(UMT5Config(vocab_size=vocab, feed_forward_proj="gated-gelu", **T5_SIZES))
    return randomize_(model, seed).eval()


def umt5_reference_state(model) -> dict:
    """The model's weights under the reference's names (Wan's ``T5Encoder``: ``token_embedding``,
    ``blocks.i.{norm1, attn.q/k/v/o, pos_embedding.embedding, norm2, ffn.gate.0, ffn.fc1, ffn.fc2}``, ``norm``)."""
    state = model.state_dict()
    out = {"token_embedding.weight": state["shared.weight"], "norm.weight": state["encoder.final_layer_norm.weight"]}
    for i in range(model.config.num_layers):
        attn, ffn = f"encoder.block.{i}.layer.0.", f"encoder.block.{i}.layer.1."
        out[f"blocks.{i}.norm1.weight"] = state[attn + "layer_norm.weight"]
        for p in "qkvo":
            out[f"blocks.{i}.attn.{p}.weight"] = state[attn + f"SelfAttention.{p}.weight"]
        out[f"blocks.{i}.pos_embedding.embedding.weight"] = state[attn + "SelfAttention.relative_attention_bias.weight"]
        out[f"blocks.{i}.norm2.weight"] = state[ffn + "layer_norm.weight"]
        out[f"blocks.{i}.ffn.gate.0.weight"] = state[ffn + "DenseReluDense.wi_0.weight"]
        out[f"blocks.{i}.ffn.fc1.weight"] = state[ffn + "DenseReluDense.wi_1.weight"]
        out[f"blocks.{i}.ffn.fc2.weight"] = state[ffn + "DenseReluDense.wo.weight"]
    return {k: v.clone() for k, v in out.items()}


def umt5_comfyui_state(model) -> dict:
    """The model's weights as ComfyUI's ``umt5_xxl_fp16.safetensors`` holds them: transformers' names without
    the tied ``encoder.embed_tokens.weight``, plus the tokenizer model as a uint8 ``spiece_model`` tensor."""
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    state["spiece_model"] = torch.frombuffer(bytearray(spiece_model()), dtype=torch.uint8)
    return state


def tiny_wan_vae(seed: int = 0):
    """diffusers ``AutoencoderKLWan`` of Wan 2.1's design at base width 4 (16 latent channels), seeded random."""
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                           temperal_downsample=[False, True, True])
    return randomize_(vae, seed).eval()


_TO_WAN_RESIDUAL = {"norm1.gamma": "residual.0.gamma", "conv1.": "residual.2.", "norm2.gamma": "residual.3.gamma",
                    "conv2.": "residual.6.", "conv_shortcut.": "shortcut."}
_RENAMES = ((r"^quant_conv\.", "conv1."), (r"^post_quant_conv\.", "conv2."), (r"^(encoder|decoder)\.conv_in\.", r"\1.conv1."),
            (r"^(encoder|decoder)\.norm_out\.", r"\1.head.0."), (r"^(encoder|decoder)\.conv_out\.", r"\1.head.2."),
            (r"\.mid_block\.resnets\.0\.", ".middle.0."), (r"\.mid_block\.attentions\.0\.", ".middle.1."),
            (r"\.mid_block\.resnets\.1\.", ".middle.2."), (r"^encoder\.down_blocks\.", "encoder.downsamples."))


def wan_vae_state(vae) -> dict:
    """The VAE's weights under the Wan VAE code's names (``encoder.downsamples.k``, ``decoder.upsamples.k``,
    ``middle.0/1/2``, ``head.0/2``, ``conv1``/``conv2``; ``residual.0/2/3/6``, ``shortcut``)."""
    per_up = vae.config.num_res_blocks + 2  # decoder: num_res_blocks + 1 residual blocks, then the up-sampler
    out = {}
    for name, value in vae.state_dict().items():
        for pattern, replacement in _RENAMES:
            name = re.sub(pattern, replacement, name)
        match = re.match(r"decoder\.up_blocks\.(\d+)\.(?:resnets\.(\d+)|upsamplers\.0)\.(.*)", name)
        if match:
            slot = int(match.group(2)) if match.group(2) is not None else per_up - 1
            name = f"decoder.upsamples.{int(match.group(1)) * per_up + slot}.{match.group(3)}"
        name = re.sub(r"(\.(?:middle|downsamples|upsamples)\.\d+\.)(norm1\.gamma|conv1\.|norm2\.gamma|conv2\.|conv_shortcut\.)",
                      lambda m: m.group(1) + _TO_WAN_RESIDUAL[m.group(2)], name)
        out[name] = value.clone()
    return out


def make_dit():
    """A tiny TempoMaster DiT that fits the tiny umT5 (text_dim 24) and, like every Wan DiT, has 128-channel
    heads (so a ``.bin`` without metadata gives its head count)."""
    return make_tiny_dit(seed=3, dim=128, num_heads=1, text_dim=T5_SIZES["d_model"])


def write_model_set(root: Path, layout: str) -> dict:
    """Write a tiny model set into ``root`` in ComfyUI's (``"comfyui"``) or the reference's (``"reference"``)
    folder layout; returns ``{"dit", "umt5", "vae"}``: the models written (the library models and the DiT)."""
    dit, umt5, vae = make_dit(), tiny_umt5(1), tiny_wan_vae(2)
    if layout == "comfyui":
        for sub in ("diffusion_models", "text_encoders", "vae"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        save_dit(dit, root / "diffusion_models" / "tempomaster_dit_bf16.safetensors")
        save_file(umt5_comfyui_state(umt5), str(root / "text_encoders" / "umt5_xxl_fp16.safetensors"))
        save_file(wan_vae_state(vae), str(root / "vae" / "wan_2.1_vae.safetensors"))
    else:
        (root / "encoders").mkdir(parents=True, exist_ok=True)
        torch.save({k: v.clone() for k, v in dit.state_dict().items()}, root / "wan_video_dit_bf16.bin")
        torch.save(umt5_reference_state(umt5), root / "encoders" / "models_t5_umt5-xxl-enc-bf16.pth")
        torch.save(wan_vae_state(vae), root / "encoders" / "Wan2.1_VAE.pth")
        write_tokenizer_folder(root / "encoders" / "google" / "umt5-xxl")
    return {"dit": dit, "umt5": umt5, "vae": vae}
