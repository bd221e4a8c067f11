"""Data-parallel training (tempomaster_core/training/data_parallel.py): two gloo ranks on CPU average their
gradients to the whole batch's, and ``torchrun ... -m tempomaster_core.training.train_dit`` trains and
writes one bundle. The ``torchrun`` checks are slow (each rank imports torch) and run under a hard timeout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tempomaster_core.training.data_parallel import TrainRanks

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def _torchrun(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def test_a_batch_the_ranks_cannot_share_evenly_is_refused_before_training():
    assert TrainRanks().share(16) == 16 and TrainRanks(1, 2).share(16) == 8
    with pytest.raises(ValueError, match="multiple of 2"):
        TrainRanks(0, 2).share(15)
    assert TrainRanks().agree(True, 7) == (True, 7) and not TrainRanks(1, 2).is_main


@pytest.mark.slow
def test_two_ranks_average_to_the_gradient_of_the_whole_batch(tmp_path):
    run = _torchrun(str(ROOT / "tests" / "train_ranks_worker.py"), str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    saved = torch.load(tmp_path / "grads.pt")
    assert saved["loss_averaged"] == pytest.approx(saved["loss_full"], rel=1e-5)
    assert len(saved["averaged"]) == len(saved["full"]) > 0
    for averaged, full in zip(saved["averaged"], saved["full"]):
        torch.testing.assert_close(averaged, full, rtol=1e-4, atol=1e-6)
    assert any(float(g.abs().max()) > 0 for g in saved["full"])


@pytest.mark.slow
def test_torchrun_trains_one_bundle_over_two_ranks(tmp_path):
    from test_train_dit import micro_codec

    micro_codec().save(tmp_path)
    run = _torchrun("-m", "tempomaster_core.training.train_dit", "--out", str(tmp_path), "--seed", "0",
                    "--steps", "3", "--threads", "1", "--checkpoint-minutes", "0", "--log-every", "1",
                    "--dim", "48", "--layers", "1", "--heads", "2", "--ffn-mult", "2", "--freq-dim", "16",
                    "--text-dim", "16", "--text-layers", "1", "--frames", "9", "--size", "32", "--batch", "4",
                    "--reuse", "2", "--pool", "16", "--warmup", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("done: 3 steps") == 1, run.stdout  # rank 0 alone reports and writes
    summary = json.loads((tmp_path / "dit_train.json").read_text())
    assert summary["ranks"] == 2 and summary["steps"] == 3 and len(summary["curve"]) == 3
    assert (tmp_path / "dit.safetensors").is_file() and (tmp_path / "text_encoder.safetensors").is_file()
