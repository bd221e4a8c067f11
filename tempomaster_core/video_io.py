"""Reading images and writing videos (PyAV writes, imageio's PyAV plugin reads), and atomic output files.

Frames cross this module in the ComfyUI IMAGE layout: float ``[F, H, W, 3]``
in ``[0, 1]``.

Every file this package writes goes through :func:`atomic_output`: the data is written to a
hidden temporary file next to the target and renamed onto it only when complete, so an error
or Ctrl-C never leaves a truncated file and never destroys the previous one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from .validation import require_number

DEFAULT_CODECS = {
    ".mp4": "libx264",
    ".mkv": "libx264",
    ".mov": "libx264",
    ".webm": "libvpx-vp9",
    ".gif": "gif",
}
"""Default FFmpeg encoder per container; each was checked to write and read back with imageio's
PyAV plugin."""

VIDEO_SUFFIXES = tuple(DEFAULT_CODECS)
"""File endings :func:`write_video` can write without an explicit codec:
``(".mp4", ".mkv", ".mov", ".webm", ".gif")``."""

_PIXEL_FORMATS = {"libx264": "yuv420p", "libvpx-vp9": "yuv420p", "libvpx": "yuv420p", "gif": "rgb8"}
"""Encoder pixel format per codec (other codecs: ``yuv420p``)."""

ENCODER_OPTIONS = {"libx264": {"x264-params": "cpu-independent=1"}}
"""FFmpeg encoder options per codec (others: the encoder's defaults), so the same frames give the same bytes.

libx264: ``cpu-independent`` (x264's "force canonical behavior rather than cpu-dependent optimal
algorithms") turns off its CPU-specific intra analysis (the ``x9`` SIMD functions). With them, x264
0.165 in PyAV 18's FFmpeg on an AVX-512 CPU wrote the same frames to different bytes in about 1 of
3 writes (4 sets of 30 random 90x50 frames written 8 times each: 11 distinct files, not 4), at any
thread count; with it, or with AVX-512 off (``asm=AVX2``), every write was identical. x264's
``deterministic`` (same output for any thread timing) is its default already."""


@contextlib.contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Write a file all at once: yield a temporary path, rename it onto ``path`` on success.

    The temporary file is hidden (``.<name>.<random>.tmp<suffix>``, same suffix so encoders
    that pick the container from the name work) and lives in ``path``'s directory (created if
    missing), so the final :func:`os.replace` is atomic. It is created empty with the usual
    permissions (``0o666`` minus the umask, or the mode of the file it replaces). On any
    exception, ``KeyboardInterrupt`` included, the temporary file is removed and ``path`` is
    left as it was (or absent).

    Args:
        path: the final file.
        overwrite: replace an existing ``path``; when false, an existing ``path`` at commit
            time raises ``FileExistsError`` (the temporary file is removed).

    Yields:
        The temporary path to write to.

    Raises:
        FileExistsError: ``path`` exists at commit time and ``overwrite`` is false.
        OSError: the directory cannot be created or written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        if os.path.lexists(target):
            if not overwrite:
                raise FileExistsError(f"{target} appeared while it was being written; not replacing it")
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float frames in ``[0, 1]`` (any layout) -> ``uint8`` 0..255 on the CPU: ``round(255 x)``, values
    outside ``[0, 1]`` clipped."""
    return (frames.detach().to("cpu", torch.float32).clamp(0, 1) * 255).round().to(torch.uint8)


def codec_for(path: str | Path) -> str:
    """The default encoder for ``path``'s container (:data:`DEFAULT_CODECS`).

    Raises:
        ValueError: the suffix is not one of :data:`VIDEO_SUFFIXES`.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in DEFAULT_CODECS:
        raise ValueError(f"cannot write a video as {Path(path).name!r}: the file must end in one of "
                         f"{', '.join(VIDEO_SUFFIXES)}")
    return DEFAULT_CODECS[suffix]


def _encode(path: Path, pixels: np.ndarray, fps: float, codec: str, pixel_format: str) -> None:
    """Encode ``uint8 [F, H, W, 3]`` pixels into ``path`` (overwritten)."""
    with VideoStream(path, fps, codec=codec) as stream:
        stream.write(torch.from_numpy(pixels))


def _stream_format(path: Path, fps: float, codec: Optional[str], height: int, width: int) -> tuple[str, str]:
    """``(codec, pixel format)`` of a video file, after checking fps and the frame size.

    Raises:
        ValueError: non-positive or non-finite fps, an unknown suffix without ``codec``, odd H/W for a
            yuv420p codec.
    """
    require_number(fps, "fps", minimum=0.0, exclusive_minimum=True, error=ValueError)
    codec = codec or codec_for(path)
    pixel_format = _PIXEL_FORMATS.get(codec, "yuv420p")
    if pixel_format == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"{codec} (yuv420p) needs an even frame size, got {height}x{width}")
    return codec, pixel_format


def write_video(
    path: str | Path,
    frames: torch.Tensor,
    fps: float,
    *,
    codec: Optional[str] = None,
    overwrite: bool = True,
    atomic: bool = True,
) -> Path:
    """Write frames as a video file.

    Args:
        path: output file; its parent directory is created. The container comes from the
            suffix (one of :data:`VIDEO_SUFFIXES` unless ``codec`` is given).
        frames: float ``[F, H, W, 3]`` in ``[0, 1]`` (values outside are clipped). Codecs
            with chroma subsampling (H.264, VP9: yuv420p) need even H and W.
        fps: frames per second of the file (e.g. 24.0 for the final level); finite, > 0.
        codec: an FFmpeg encoder name known to PyAV; default per container
            (:data:`DEFAULT_CODECS`: H.264 for .mp4/.mkv/.mov, VP9 for .webm, GIF for .gif),
            with the encoder's defaults (e.g. x264 CRF 23) plus :data:`ENCODER_OPTIONS` (the same frames
            give the same bytes).
        overwrite: replace an existing file (default); false raises ``FileExistsError``
            if ``path`` exists when the video is complete.
        atomic: write through :func:`atomic_output` (default), so ``path`` is either the
            complete new video or untouched; ``False`` writes ``path`` directly (for a
            caller that already holds a temporary path).

    Returns:
        The path written.

    Raises:
        ValueError: wrong layout, no frames, non-positive or non-finite fps, an unknown
            suffix without ``codec``, or odd H/W for a yuv420p codec.
        FileExistsError: see ``overwrite``.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"expected frames [F, H, W, 3] with F > 0, got shape {tuple(frames.shape)}")
    path = Path(path)
    codec, pixel_format = _stream_format(path, fps, codec, int(frames.shape[1]), int(frames.shape[2]))
    pixels = to_uint8(frames).numpy()
    if not atomic:
        path.parent.mkdir(parents=True, exist_ok=True)
        _encode(path, pixels, fps, codec, pixel_format)
        return path
    with atomic_output(path, overwrite=overwrite) as tmp:
        _encode(tmp, pixels, fps, codec, pixel_format)
    return path


def read_video(path: str | Path) -> tuple[torch.Tensor, float]:
    """Read a video file.

    Returns:
        ``(frames, fps)``: float32 ``[F, H, W, 3]`` in ``[0, 1]`` and the stream's fps.
    """
    import imageio.v3 as iio

    pixels = iio.imread(path, plugin="pyav")
    fps = float(iio.immeta(path, plugin="pyav").get("fps", 0.0))
    return torch.from_numpy(np.ascontiguousarray(pixels)).float() / 255.0, fps


class VideoStream:
    """Write a video batch by batch: memory holds one batch of frames, never the whole video.

    The file is opened (PyAV, with :data:`ENCODER_OPTIONS`; :func:`write_video` writes through this class) at the first
    :meth:`write`, which fixes the frame size; :meth:`close` (or leaving the ``with`` block, also on an
    exception or Ctrl-C) finishes the file, so the frames written so far form a playable video. Write
    to a temporary path of :func:`atomic_output` to publish the file only when it is complete.

    Args:
        path: the file (container from the suffix, :data:`VIDEO_SUFFIXES`, unless ``codec`` is given).
        fps: frames per second, finite > 0.
        codec: an FFmpeg encoder name (default per container, :data:`DEFAULT_CODECS`).

    Attributes:
        frames_written: frames encoded so far.

    Raises:
        ValueError: bad fps or suffix (when made); a batch that is not ``[F, H, W, 3]``, of another
            size than the first batch, or of odd size for a yuv420p codec (in :meth:`write`).
    """

    def __init__(self, path: str | Path, fps: float, *, codec: Optional[str] = None) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.codec, self.pixel_format = _stream_format(self.path, fps, codec, 2, 2)
        self.frames_written = 0
        self._file = None
        self._size: Optional[tuple[int, int]] = None

    def write(self, frames: torch.Tensor) -> None:
        """Encode ``frames``: ``uint8 [F, H, W, 3]`` (0..255) or float ``[F, H, W, 3]`` in ``[0, 1]`` (clipped)."""
        import av

        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames [F, H, W, 3], got shape {tuple(frames.shape)}")
        size = (int(frames.shape[1]), int(frames.shape[2]))
        if self._file is None:
            _stream_format(self.path, self.fps, self.codec, *size)
            self._file = av.open(str(self.path), "w")
            try:
                self._stream = self._file.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(65535),
                                                     options=dict(ENCODER_OPTIONS.get(self.codec, {})))
                self._stream.height, self._stream.width = size
                self._stream.pix_fmt = self.pixel_format
            except BaseException:
                self._file.close()
                self._file = None
                raise
            self._size = size
        elif size != self._size:
            raise ValueError(f"frames of {size[1]}x{size[0]} pixels in a {self._size[1]}x{self._size[0]} video")
        pixels = frames if frames.dtype == torch.uint8 else to_uint8(frames)
        for frame in pixels.detach().cpu().numpy():
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = self.frames_written
            self._file.mux(self._stream.encode(picture))
            self.frames_written += 1

    def close(self) -> None:
        """Finish the file (flush the encoder, write the container index); idempotent."""
        if self._file is not None:
            try:
                self._file.mux(self._stream.encode(None))
            finally:
                self._file.close()
                self._file = None

    def __enter__(self) -> "VideoStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def video_properties(path: str | Path) -> tuple[int, int, int, float]:
    """``(frames, height, width, fps)`` of a video file, without keeping its frames in memory.

    The frame count comes from the container when it stores one, else from decoding the stream once.

    Raises:
        FileNotFoundError / IsADirectoryError: no such file, or a directory.
        ValueError: a file that imageio's PyAV plugin cannot read as a video, or one without frames.
    """
    import imageio.v3 as iio

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"video path is a directory, not a file: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    try:
        with iio.imopen(path, "r", plugin="pyav") as file:  # one open: imageio's plugin runs gc on every close
            props = file.properties()
            fps = float(file.metadata().get("fps", 0.0) or 0.0)
            frames = int(props.shape[0]) or sum(1 for _ in file.iter())
    except Exception as err:  # av.error.InvalidDataError, OSError, ... : not a readable video
        raise ValueError(f"cannot read {path} as a video ({type(err).__name__}: {err})") from err
    if frames == 0:
        raise ValueError(f"video has no frames: {path}")
    return frames, int(props.shape[1]), int(props.shape[2]), fps


def iter_video(path: str | Path) -> Iterator[torch.Tensor]:
    """The frames of a video file one at a time, each ``uint8 [H, W, 3]`` (RGB, 0..255)."""
    import imageio.v3 as iio

    for frame in iio.imiter(path, plugin="pyav"):
        yield torch.from_numpy(np.ascontiguousarray(frame))


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as RGB (any format Pillow decodes; alpha is dropped).

    Returns:
        float32 ``[1, H, W, 3]`` in ``[0, 1]`` (ComfyUI IMAGE layout, batch of one).

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: the path is a directory.
        PermissionError: the file cannot be read.
        ValueError: an empty file, a file Pillow cannot decode (not an image, truncated),
            or an image with zero width or height.
    """
    from PIL import Image

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"image path is a directory, not a file: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"image file is empty (0 bytes): {path}")
    try:
        with Image.open(path) as image:
            if image.width == 0 or image.height == 0:
                raise ValueError(f"image has zero size ({image.width}x{image.height}): {path}")
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (ValueError, PermissionError):
        raise
    except Exception as err:  # PIL.UnidentifiedImageError, truncated data (OSError), decompression bombs
        raise ValueError(f"cannot read {path} as an image ({type(err).__name__}: {err})") from err
    return torch.from_numpy(rgb)[None]
