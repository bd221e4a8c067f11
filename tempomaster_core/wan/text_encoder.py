"""umT5-XXL, the text encoder of Wan 2.1 and TempoMaster, on transformers' ``UMT5EncoderModel``.

Checkpoint layouts (recognised by their key names, :func:`text_encoder_layout`):

* ``"transformers"`` -- ComfyUI's repackaged ``umt5_xxl_fp16.safetensors`` (and its scaled fp8 variant
  ``umt5_xxl_fp8_e4m3fn_scaled.safetensors``): transformers' own names (``shared.weight``,
  ``encoder.block.{i}.layer.0.SelfAttention.q.weight``, ..., ``encoder.final_layer_norm.weight``) plus a
  ``spiece_model`` entry, a uint8 tensor holding the SentencePiece tokenizer model;
* ``"reference"`` -- the Wan release's ``models_t5_umt5-xxl-enc-bf16.pth`` that the reference loads
  (``token_embedding.weight``, ``blocks.{i}.norm1.weight``, ``blocks.{i}.attn.q.weight``,
  ``blocks.{i}.pos_embedding.embedding.weight``, ``blocks.{i}.ffn.gate.0.weight`` (the GELU branch),
  ``blocks.{i}.ffn.fc1.weight``, ``blocks.{i}.ffn.fc2.weight``, ``norm.weight``); its tokenizer is the
  ``google/umt5-xxl`` folder beside it.

Both are the same network (every block has its own relative position bias; gated-GELU feed-forward with the
tanh GELU; RMS norms; attention without the 1/sqrt(d) scale); :data:`REFERENCE_RENAMES` maps the reference's
names onto transformers'. The configuration is ``umt5_xxl_encoder.json`` (next to this module); its sizes
are replaced by the ones the tensor shapes show (:func:`infer_umt5_config`), so a smaller umT5 of the same
design loads too (the tests use one).

Prompt embedding (the reference's ``WanPrompter.encode_prompt``): the prompt is cleaned as the reference's
``clean='whitespace'`` does (``ftfy.fix_text``, HTML entities unescaped twice, runs of whitespace to one
space), tokenized with the end token ``</s>`` appended, truncated to :data:`~tempomaster_core.defaults.TEXT_LEN`
(512) tokens, encoded, and zero-padded to 512 rows. The reference pads the ids to 512 and masks the padding
keys; the rows of the real tokens do not depend on masked keys, so encoding only the real tokens gives the
same rows for less compute.
"""

from __future__ import annotations

import html
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import torch

from ..defaults import TEXT_LEN
from ..fp8 import INPUT_SCALE_SUFFIX, SCALE_SUFFIX, SCALED_FP8_MARKER, dequantize
from ..loading import CheckpointError, key_problems, open_checkpoint
from .extra import require_wan_extra
from .files import TEXT_ENCODER_HINT, TOKENIZER_JSON, TOKENIZER_SPIECE, ModelFileError

CONFIG_FILE = Path(__file__).with_name("umt5_xxl_encoder.json")
"""transformers ``UMT5Config`` of the umT5-XXL encoder (google/umt5-xxl's settings)."""

SPIECE_KEY = "spiece_model"
"""Entry of ComfyUI's umT5 file that holds the SentencePiece tokenizer model (uint8 bytes)."""

REFERENCE_RENAMES = (
    (r"token_embedding\.weight", "shared.weight"),
    (r"norm\.weight", "encoder.final_layer_norm.weight"),
    (r"blocks\.(\d+)\.norm1\.weight", r"encoder.block.\1.layer.0.layer_norm.weight"),
    (r"blocks\.(\d+)\.attn\.([qkvo])\.weight", r"encoder.block.\1.layer.0.SelfAttention.\2.weight"),
    (r"blocks\.(\d+)\.pos_embedding\.embedding\.weight",
     r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias.weight"),
    (r"blocks\.(\d+)\.norm2\.weight", r"encoder.block.\1.layer.1.layer_norm.weight"),
    (r"blocks\.(\d+)\.ffn\.gate\.0\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wi_0.weight"),
    (r"blocks\.(\d+)\.ffn\.fc1\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wi_1.weight"),
    (r"blocks\.(\d+)\.ffn\.fc2\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wo.weight"),
)
"""``(reference name pattern, transformers name)`` pairs; ``gate.0`` is the branch the reference passes
through GELU (transformers' ``wi_0``), ``fc1`` the linear branch (``wi_1``)."""

TIED_EMBEDDING = "encoder.embed_tokens.weight"
"""transformers' second name of ``shared.weight`` (the same tensor); ComfyUI's file may leave it out."""


def text_encoder_layout(names) -> Optional[str]:
    """``"transformers"`` or ``"reference"`` for the key names of a umT5 checkpoint, ``None`` for other files."""
    names = set(names)
    if "shared.weight" in names or "encoder.block.0.layer.0.SelfAttention.q.weight" in names:
        return "transformers"
    if "token_embedding.weight" in names and "blocks.0.attn.q.weight" in names:
        return "reference"
    return None


def _model_names(stored: Mapping[str, tuple]) -> dict[str, str]:
    """``{transformers name: stored name}`` of a checkpoint's weights (fp8 scales, the fp8 marker and the
    tokenizer entry left out).

    Raises:
        ModelFileError: not a umT5 file, or reference-layout names that have no counterpart.
    """
    weights = [k for k in stored if k != SPIECE_KEY and k != SCALED_FP8_MARKER
               and not k.endswith(SCALE_SUFFIX) and not k.endswith(INPUT_SCALE_SUFFIX)]
    layout = text_encoder_layout(weights)
    if layout is None:
        raise ModelFileError(f"this is not a umT5 text encoder (keys such as {sorted(weights)[:3]})")
    if layout == "transformers":
        names = {k: k for k in weights if k != TIED_EMBEDDING}
        if "shared.weight" not in names and TIED_EMBEDDING in stored:
            names["shared.weight"] = TIED_EMBEDDING
        return names
    names, unknown = {}, []
    for key in weights:
        for pattern, target in REFERENCE_RENAMES:
            if re.fullmatch(pattern, key):
                names[re.sub(pattern, target, key)] = key
                break
        else:
            unknown.append(key)
    if unknown:
        raise ModelFileError(f"reference-layout umT5 file with unknown tensors {sorted(unknown)[:5]}")
    return names


def infer_umt5_config(shapes: Mapping[str, tuple]) -> dict:
    """``UMT5Config`` arguments: :data:`CONFIG_FILE` with the sizes the tensor shapes show.

    Args:
        shapes: ``{transformers name: shape}``.

    Returns:
        A dict for ``UMT5Config(**...)``: ``vocab_size``, ``d_model`` (``shared.weight``), ``num_layers``
        (block count), ``num_heads`` and ``relative_attention_num_buckets`` (block 0's relative attention
        bias, ``[buckets, heads]``), ``d_kv`` (query rows / heads), ``d_ff`` (``wi_0`` rows); the rest as shipped.

    Raises:
        ModelFileError: a tensor the sizes are read from is missing or has the wrong rank.
    """
    import json

    def shape(name: str, rank: int) -> tuple:
        if name not in shapes or len(shapes[name]) != rank:
            raise ModelFileError(f"the umT5 file lacks {name!r} (or it is not {rank}-D); it is incomplete")
        return tuple(shapes[name])

    config = json.loads(CONFIG_FILE.read_text())
    vocab, d_model = shape("shared.weight", 2)
    buckets, heads = shape("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 2)
    inner = shape("encoder.block.0.layer.0.SelfAttention.q.weight", 2)[0]
    layers = {int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.block\.(\d+)\.", k))}
    if inner % heads:
        raise ModelFileError(f"the umT5 attention width {inner} is not a multiple of its {heads} heads")
    config.update(vocab_size=vocab, d_model=d_model, num_layers=len(layers), num_heads=heads,
                  relative_attention_num_buckets=buckets, d_kv=inner // heads,
                  d_ff=shape("encoder.block.0.layer.1.DenseReluDense.wi_0.weight", 2)[0])
    return config


def read_text_encoder_file(path: Union[str, Path]) -> tuple[dict, Optional[bytes]]:
    """Check a umT5 file without reading its weights: its config and its embedded tokenizer model.

    Returns:
        ``(UMT5Config arguments, SentencePiece model bytes or None)``.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a umT5 text encoder, or incomplete.
    """
    ckpt = _open(path)
    try:
        names = _model_names(ckpt.shapes)
        config = infer_umt5_config({new: ckpt.shapes[old] for new, old in names.items()})
        spiece = bytes(ckpt.get(SPIECE_KEY).numpy().tobytes()) if SPIECE_KEY in ckpt.shapes else None
    finally:
        ckpt.close()
    return config, spiece


def _open(path):
    try:
        return open_checkpoint(path, hint=TEXT_ENCODER_HINT)
    except CheckpointError as err:
        raise ModelFileError(str(err)) from None


def load_umt5_encoder(path: Union[str, Path], *, dtype: torch.dtype = torch.bfloat16,
                      device: Union[str, torch.device] = "cpu"):
    """Build transformers' ``UMT5EncoderModel`` from a umT5 checkpoint in either layout.

    The module is built on the meta device and each tensor is read, cast to ``dtype`` and moved to
    ``device`` one at a time (scaled fp8 weights are multiplied by their ``scale_weight`` first), then
    assigned, so the weights exist once.

    Args:
        path: ``.safetensors`` or ``.pth``/``.bin`` file (content decides).
        dtype: parameter dtype (bf16 as the reference runs it; fp32 for CPU tests).
        device: where the parameters live.

    Returns:
        The model in eval mode, no gradients.

    Raises:
        MissingExtraError: transformers is not installed.
        ModelFileError: not a umT5 file, or its tensors do not fit the model its shapes describe.
    """
    require_wan_extra("the umT5 text encoder")
    from transformers import UMT5Config, UMT5EncoderModel

    ckpt = _open(path)
    try:
        names = _model_names(ckpt.shapes)
        config = UMT5Config(**infer_umt5_config({new: ckpt.shapes[old] for new, old in names.items()}))
        with torch.device("meta"):
            model = UMT5EncoderModel(config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != TIED_EMBEDDING}
        problems = key_problems(expected, {new: ckpt.shapes[old] for new, old in names.items()})
        if problems:
            raise ModelFileError(f"{path}: the umT5 file does not fit UMT5EncoderModel: {'; '.join(problems)}")
        tensors = {}
        for new, old in names.items():
            scale_name = old[: -len(".weight")] + SCALE_SUFFIX if old.endswith(".weight") else None
            scale = ckpt.get(scale_name) if scale_name in ckpt.shapes else None
            tensors[new] = dequantize(ckpt.get(old), scale, dtype).to(device)
        tensors[TIED_EMBEDDING] = tensors["shared.weight"]
        model.load_state_dict(tensors, strict=True, assign=True)
    finally:
        ckpt.close()
    model.requires_grad_(False)
    return model.eval()


def clean_prompt(text: str) -> str:
    """The reference's ``clean='whitespace'`` prompt clean-up: ``ftfy.fix_text``, HTML entities unescaped
    twice, whitespace runs collapsed to one space, ends stripped."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class PromptTokenizer:
    """Prompt -> umT5 token ids, ending with the end token, at most ``max_length`` ids.

    Attributes:
        encode: ``text -> list of ids`` (end token included, not truncated).
        eos_id: the end token's id (1 for umT5).
        vocab_size: tokens the tokenizer knows (its ids are below this).
        source: where it was read from (for messages).
    """

    encode: Callable[[str], list]
    eos_id: int
    vocab_size: int
    source: str

    def __call__(self, text: str, max_length: int = TEXT_LEN) -> list:
        """Token ids of the cleaned prompt (:func:`clean_prompt`), truncated to ``max_length`` with the end
        token kept last (a warning says so)."""
        ids = list(self.encode(clean_prompt(text)))
        if len(ids) > max_length:
            warnings.warn(f"the prompt has {len(ids)} tokens; umT5 keeps the first {max_length - 1} and the end "
                          f"token (as the reference truncates): {text[:60]!r}...", stacklevel=2)
            ids = ids[: max_length - 1] + [self.eos_id]
        return ids


def sentencepiece_tokenizer(model: Union[bytes, str, Path], source: str) -> PromptTokenizer:
    """A :class:`PromptTokenizer` on a SentencePiece model (ComfyUI's embedded ``spiece_model`` bytes, or a
    ``spiece.model`` file): ids as ComfyUI's umT5 tokenizer makes them, the end token appended.

    Raises:
        ModelFileError: the model cannot be read or has no end token.
    """
    import sentencepiece

    try:
        if isinstance(model, bytes):
            processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        else:
            processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    except (RuntimeError, OSError) as err:
        raise ModelFileError(f"{source}: not a SentencePiece tokenizer model ({err})") from None
    eos = processor.eos_id()
    if eos < 0:
        raise ModelFileError(f"{source}: the SentencePiece model has no end token")
    return PromptTokenizer(lambda text: processor.encode(text) + [eos], eos, processor.get_piece_size(), source)


def tokenizer_kind(directory: Union[str, Path]) -> Optional[str]:
    """``"transformers"`` (a ``tokenizer.json``, as in ``google/umt5-xxl``), ``"sentencepiece"`` (only a
    ``spiece.model``) or ``None`` (neither) for a tokenizer folder."""
    root = Path(directory)
    if (root / TOKENIZER_JSON).is_file():
        return "transformers"
    if (root / TOKENIZER_SPIECE).is_file():
        return "sentencepiece"
    return None


def load_tokenizer(directory: Union[str, Path, None] = None, embedded: Optional[bytes] = None) -> PromptTokenizer:
    """The umT5 tokenizer from a folder (``google/umt5-xxl``: transformers' ``AutoTokenizer``, local files
    only; a folder with only ``spiece.model``: SentencePiece) or from the model bytes embedded in ComfyUI's
    text encoder file. A folder wins over embedded bytes.

    Raises:
        MissingExtraError: transformers/sentencepiece missing.
        ModelFileError: no tokenizer at all, or one that cannot be read.
    """
    require_wan_extra("the umT5 tokenizer")
    if directory is None:
        if embedded is None:
            raise ModelFileError("no umT5 tokenizer: the text encoder file holds none; pass --tokenizer DIR "
                                 "(the google/umt5-xxl folder of the Wan 2.1 release)")
        return sentencepiece_tokenizer(embedded, "the tokenizer inside the text encoder file")
    root = Path(directory)
    kind = tokenizer_kind(root)
    if kind == "sentencepiece":
        return sentencepiece_tokenizer(root / TOKENIZER_SPIECE, str(root))
    if kind is None:
        raise ModelFileError(f"{root} holds neither {TOKENIZER_JSON} nor {TOKENIZER_SPIECE}: not a tokenizer "
                             "folder (the Wan 2.1 release's google/umt5-xxl)")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{root}: cannot read the tokenizer ({err})") from None
    return PromptTokenizer(lambda text: list(tok(text, add_special_tokens=True)["input_ids"]),
                           int(tok.eos_token_id), len(tok), str(root))


class UMT5TextEncoder:
    """umT5 encoder + tokenizer: prompt -> the text context the TempoMaster DiT takes.

    Args:
        model: transformers ``UMT5EncoderModel`` (:func:`load_umt5_encoder`).
        tokenizer: :class:`PromptTokenizer` (:func:`load_tokenizer`).
        text_len: rows of the context (512, :data:`~tempomaster_core.defaults.TEXT_LEN`).

    """

    def __init__(self, model, tokenizer: PromptTokenizer, text_len: int = TEXT_LEN):
        self.model = model
        self.tokenizer = tokenizer
        self.text_len = int(text_len)

    @property
    def text_dim(self) -> int:
        """Width of an embedding row (4096 for umT5-XXL)."""
        return int(self.model.config.d_model)

    @torch.no_grad()
    def encode(self, text: str) -> torch.Tensor:
        """Embeddings float32 ``[1, text_len, text_dim]`` on the model's device: the prompt's token rows
        (end token included), then zero rows.

        Raises:
            TypeError: ``text`` is not a string.
            ModelFileError: the tokenizer gave an id outside the encoder's vocabulary (another model's tokenizer).
        """
        if not isinstance(text, str):
            raise TypeError(f"prompt must be a string, got {type(text).__name__}")
        ids = self.tokenizer(text, self.text_len)
        vocab = int(self.model.config.vocab_size)
        if max(ids) >= vocab:
            raise ModelFileError(f"the tokenizer ({self.tokenizer.source}) gave token id {max(ids)}, outside the text "
                                 f"encoder's vocabulary of {vocab}: it belongs to another model")
        device = self.model.shared.weight.device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        hidden = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
        out = torch.zeros(1, self.text_len, self.text_dim, dtype=torch.float32, device=device)
        out[:, : len(ids)] = hidden.to(torch.float32)
        return out


__all__ = ["CONFIG_FILE", "PromptTokenizer", "REFERENCE_RENAMES", "SPIECE_KEY", "UMT5TextEncoder", "clean_prompt",
           "infer_umt5_config", "load_tokenizer", "load_umt5_encoder", "read_text_encoder_file",
           "sentencepiece_tokenizer", "text_encoder_layout", "tokenizer_kind"]
