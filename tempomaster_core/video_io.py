"""Reading images and writing videos (imageio with the PyAV plugin).

Frames cross this module in the ComfyUI IMAGE layout: float ``[F, H, W, 3]``
in ``[0, 1]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_video(path: str | Path, frames: torch.Tensor, fps: float, *, codec: str = "libx264") -> Path:
    """Write frames as a video file (H.264 in MP4 by default).

    Args:
        path: output file; its parent directory is created. The container comes
            from the suffix (``.mp4``, ``.mkv``, ``.mov`` …).
        frames: float ``[F, H, W, 3]`` in ``[0, 1]`` (values outside are clipped).
            H.264 with yuv420p needs even H and W.
        fps: frames per second of the file (e.g. 24.0 for the final level).
        codec: an FFmpeg encoder name known to PyAV (encoder defaults, e.g. x264 CRF 23).

    Returns:
        The path written.

    Raises:
        ValueError: wrong layout, no frames, non-positive fps, or odd H/W for H.264.
    """
    import imageio.v3 as iio

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"expected frames [F, H, W, 3] with F > 0, got shape {tuple(frames.shape)}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    height, width = int(frames.shape[1]), int(frames.shape[2])
    if codec == "libx264" and (height % 2 or width % 2):
        raise ValueError(f"H.264 needs an even frame size, got {height}x{width}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    iio.imwrite(path, pixels, plugin="pyav", fps=float(fps), codec=codec, out_pixel_format="yuv420p")
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


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as RGB.

    Returns:
        float32 ``[1, H, W, 3]`` in ``[0, 1]`` (ComfyUI IMAGE layout, batch of one).

    Raises:
        FileNotFoundError: the file does not exist.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb)[None]
