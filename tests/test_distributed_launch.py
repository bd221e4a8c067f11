"""``torchrun`` with 2 gloo ranks on CPU: the same frames as one process, rank 0 alone writes, a failing
rank stops both. Slow (every rank imports torch; seconds per run), each run under a hard timeout."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
TIMEOUT_S = 300


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(*args, nproc=2):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.parametrize("scenario", ["builtin", "tiny"])
def test_two_ranks_give_the_frames_of_one_process(tmp_path, scenario):
    """fp32 CPU, bit for bit: the built-in model's default tree (guided blueprint split by passes, 2 and 4
    chunks split by chunks) and a random tiny DiT on 1/3/3 chunks (3 guided chunks by passes, 3 by 2 + 1)."""
    if scenario == "builtin":
        from tempomaster_core.tiny.builtin import is_available

        if not is_available():
            pytest.skip("the built-in model is not installed")
    run = _torchrun(str(WORKER), scenario, str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    saved = torch.load(tmp_path / "frames.pt")
    assert saved["distributed"].shape[0] > 0
    assert torch.equal(saved["distributed"], saved["single"])


def test_a_failing_rank_stops_both_with_its_error(tmp_path):
    started = time.perf_counter()
    run = _torchrun(str(WORKER), "fail", str(tmp_path))
    assert run.returncode != 0
    assert time.perf_counter() - started < 120
    assert "error: rank 1: RankFailure: out of memory on rank 1 (test)" in run.stderr
    assert "error: rank 0: RankFailure: rank 1 of 2 failed, so rank 0 stopped too: MemoryError" in run.stderr
    assert not (tmp_path / "frames.pt").exists()


def test_ranks_with_different_model_files_are_refused(tmp_path):
    run = _torchrun(str(WORKER), "mismatch", str(tmp_path))
    assert run.returncode != 0
    assert "rank 1 differs from rank 0 in model file dit.safetensors" in run.stderr


def test_the_command_line_under_torchrun_writes_the_one_process_video(tmp_path):
    """``torchrun --nproc-per-node 2 -m tempomaster_core generate``: exit 0, one file (rank 0's), the frames
    of ``python -m tempomaster_core generate`` with the same arguments: the same mp4 bytes (libx264 writes
    the same frames to the same bytes, ``video_io.ENCODER_OPTIONS``)."""
    from tempomaster_core.tiny.builtin import is_available

    if not is_available():
        pytest.skip("the built-in model is not installed")
    args = ["generate", "--prompt", "a blue square falling", "--device", "cpu", "--seed", "2"]
    two = _torchrun("-m", "tempomaster_core", *args, "--out", str(tmp_path / "two.mp4"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 ranks on cpu (gloo)" in two.stderr and two.stderr.count("done in") == 1
    one = subprocess.run([sys.executable, "-m", "tempomaster_core", *args, "--out", str(tmp_path / "one.mp4")],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert one.returncode == 0, one.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.mp4", "two.mp4"]
    assert (tmp_path / "two.mp4").read_bytes() == (tmp_path / "one.mp4").read_bytes()
