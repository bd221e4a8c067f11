"""Writing videos: the same frames give the same file (``video_io.ENCODER_OPTIONS``)."""

import pytest
import torch

from tempomaster_core.video_io import read_video, write_video


@pytest.mark.slow
def test_the_same_frames_give_the_same_mp4_bytes(tmp_path):
    """100 random 90x50 frames written 4 times: one file. Without x264's ``cpu-independent`` an AVX-512 CPU
    gave 4 distinct files in 8 writes of these frames, decoded up to 0.24 apart (seconds: slow)."""
    frames = torch.rand((100, 50, 90, 3), generator=torch.Generator().manual_seed(0))
    files = []
    for i in range(4):
        path = write_video(tmp_path / f"{i}.mp4", frames, 24.0)
        files.append(path.read_bytes())
    assert all(data == files[0] for data in files[1:])
    decoded, fps = read_video(tmp_path / "0.mp4")
    assert decoded.shape == frames.shape and fps == 24.0
