"""Tests of the TempoMaster-Tiny DiT trainer (tempomaster_core/training/train_dit.py, masks.py).

Micro sizes throughout (random micro codec, 1-layer DiT, 9-frame 32x32 clips): the file runs in
about 12 s on a 2-core CPU (the ``torch.compile`` check and the two render-process checks are marked ``slow`` and run separately).
"""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from tempomaster_core.plan import TreePlan
from tempomaster_core.tiny.codec import CodecConfig, TinyVideoCodec
from tempomaster_core.tiny.scenes import render_frames, sample_scene
from tempomaster_core.training.masks import (
    BLUEPRINT_KINDS,
    ConditionDraw,
    draw_blueprint_pattern,
    draw_condition,
    refinement_patterns,
)
from tempomaster_core.training import train_dit
from tempomaster_core.tiny.scenes import HELD_OUT_SEED_BASE
from tempomaster_core.training.train_dit import (
    Batch,
    ReplayPool,
    TrainConfig,
    build_models,
    flow_matching_loss,
    lr_at,
    make_batch,
    render_batch,
    RenderedChunks,
    rendered_chunk_loader,
    render_sample,
    shifted_sigmas,
    train,
)


def micro_codec() -> TinyVideoCodec:
    torch.manual_seed(0)
    return TinyVideoCodec(CodecConfig(latent_channels=4, channels=(8, 8, 8), blocks=(1, 1, 1))).eval()


def micro_cfg(**kw) -> TrainConfig:
    base = dict(dim=48, layers=1, heads=2, ffn_mult=2, freq_dim=16, text_dim=16, text_layers=1,
                frames=9, size=32, batch=4, reuse=2, pool=16, warmup=2, lr=3e-3)
    base.update(kw)
    return TrainConfig(**base)


# -- condition patterns ---------------------------------------------------------------


def expected_anchors(frames: int, ratio: int, chunk: int, boundary: str = "repeat_anchor") -> dict:
    """Hand rule (reference preparer_condition_video) in clip offsets: level frame n = chunk*P + p
    is known when n is a multiple of ratio, and (repeat_anchor boundary mode only) the first/last frame
    of a chunk is known with the ground truth of level frame (n // ratio) * ratio."""
    out = {}
    for p in range(frames):
        n = chunk * frames + p
        if n % ratio == 0 or (boundary == "repeat_anchor" and p in (0, frames - 1)):
            out[p] = (n // ratio) * ratio - chunk * frames
    return out


@pytest.mark.parametrize("frames", [9, 25])
def test_refinement_patterns_are_the_plan_anchor_patterns(frames):
    patterns = refinement_patterns(frames)
    # per boundary mode: (4,2,1): 2 + 4 chunks with ratio 2; (4,1): 4 chunks with ratio 4
    assert [(p.interval, p.ratio) for p in patterns] == ([(2, 2)] * 2 + [(1, 2)] * 4 + [(1, 4)] * 4) * 2
    assert [p.level[3] for p in patterns] == ["repeat_anchor"] * 10 + ["anchors"] * 10
    for draw in patterns:
        intervals, level_index, chunk, boundary = draw.level
        assert dict(draw.conditions) == expected_anchors(frames, draw.ratio, chunk, boundary)
        level = TreePlan(frames, intervals, height=16, width=16, boundary=boundary).levels[level_index]
        assert torch.equal(torch.from_numpy(draw.mask()), level.masks()[chunk])


def test_refinement_pattern_hand_worked_chunk1_ratio2():
    # chunk 1 of a 25-frame-chunk ratio-2 level starts at level frame 25 (odd): known odd pixels
    # 1..23, plus pixel 0 showing level frame 24 (offset -1) and pixel 24 showing frame 48 (offset 23).
    draw = [p for p in refinement_patterns(25) if p.level == ((4, 2, 1), 2, 1, "repeat_anchor")][0]
    conds = dict(draw.conditions)
    assert conds[0] == -1 and conds[24] == 23
    assert sorted(conds) == [0] + list(range(1, 24, 2)) + [24]
    assert all(conds[p] == p for p in range(1, 24, 2))
    # boundary="anchors": the same chunk knows only the true frames of the level above (odd pixels)
    draw = [p for p in refinement_patterns(25) if p.level == ((4, 2, 1), 2, 1, "anchors")][0]
    assert dict(draw.conditions) == {p: p for p in range(1, 24, 2)}


def test_blueprint_patterns():
    rng = np.random.default_rng(3)
    assert draw_blueprint_pattern(rng, "t2v", 25, 4).conditions == ()
    assert draw_blueprint_pattern(rng, "i2v", 25, 4).conditions == ((0, 0),)
    assert draw_blueprint_pattern(rng, "first_last", 25, 4).conditions == ((0, 0), (24, 24))
    for _ in range(200):
        kf = draw_blueprint_pattern(rng, "keyframes", 25, 2)
        known = [p for p, s in kf.conditions]
        assert all(p == s for p, s in kf.conditions)
        extra = len(set(known) - {0, 24})
        assert len(known) <= round(0.15 * 25) + 2 and extra <= round(0.15 * 25)
        prefix = draw_blueprint_pattern(rng, "prefix", 25, 1)
        assert [p for p, _ in prefix.conditions] in ([0], list(range(5)), list(range(9)))
    with pytest.raises(ValueError, match="unknown blueprint pattern"):
        draw_blueprint_pattern(rng, "bogus", 25, 4)


def test_draw_condition_mix_and_validation():
    rng = np.random.default_rng(0)
    draws = [draw_condition(rng, 25) for _ in range(3000)]
    kinds = [d.kind for d in draws]
    assert set(kinds) == set(BLUEPRINT_KINDS) | {"refine"}
    assert 0.45 < kinds.count("refine") / len(kinds) < 0.59
    refine = [d for d in draws if d.kind == "refine"]
    assert 0.15 < sum(d.ratio == 4 for d in refine) / len(refine) < 0.25
    assert {d.interval for d in draws if d.kind != "refine"} == {1, 2, 4}
    only = [draw_condition(rng, 9, kind_probs={"i2v": 1.0}) for _ in range(5)]
    assert all(d.kind == "i2v" and d.frames == 9 for d in only)
    with pytest.raises(ValueError, match="unknown pattern kinds"):
        draw_condition(rng, 25, kind_probs={"nope": 1.0})


def test_render_sample_places_ground_truth_frames():
    draw = ConditionDraw("refine", 2, 2, 9, ((0, -1), (1, 1), (3, 3), (8, 7)))
    rng = np.random.default_rng(11)
    clip, cond, mask, spec = render_sample(np.random.default_rng(11), draw, size=32)
    seed = int(rng.integers(0, HELD_OUT_SEED_BASE))  # same draws, in the same order
    t0 = int(rng.integers(8, 480))
    assert spec == sample_scene(seed, height=32, width=32)
    assert torch.allclose(clip, render_frames(spec, [t0 + 2 * j for j in range(9)]))
    assert mask.tolist() == [1, 1, 0, 1, 0, 0, 0, 0, 1]
    for pixel, source in draw.conditions:
        assert torch.allclose(cond[:, pixel], render_frames(spec, [t0 + 2 * source])[:, 0])
    assert cond[:, [2, 4, 5, 6, 7]].abs().max() == 0


# -- batches, loss, schedule -------------------------------------------------------------


def test_make_batch_shapes_and_conditions():
    codec = micro_codec()
    cfg = micro_cfg(caption_dropout=0.0)
    batch = make_batch(np.random.default_rng(0), codec, 6, cfg, kind_probs={"refine": 1.0})
    assert batch.x0.shape == (6, 4, 3, 4, 4) and batch.y.shape == (6, 8, 3, 4, 4)
    assert all(k == "refine" for k in batch.kinds) and torch.all(batch.shifts == 3.0)
    assert all(c and c.split()[0] in ("a", "one", "two", "three") for c in batch.captions)
    # refinement: every pattern knows some frames; pixel frame 0 is known exactly when the
    # pattern has a condition at pixel 0 (always in the repeat_anchor boundary mode)
    for i in range(len(batch)):
        known_first = float(batch.y[i, 0, 0, 0, 0])
        assert torch.all(batch.y[i, :4, 0] == known_first) and batch.y[i, :4].sum() > 0
    assert torch.any(batch.y[:, 0, 0, 0, 0] == 1)
    steps = batch.positions[:, 1:] - batch.positions[:, :-1]
    assert torch.all((steps == 1) | (steps == 2))
    assert torch.all(steps == steps[:, :1])  # constant stride = the clip's frame interval
    assert batch.positions[:, 0].min() >= 0 and batch.positions[:, 0].max() <= cfg.t_max
    t2v = make_batch(np.random.default_rng(1), codec, 3, micro_cfg(caption_dropout=1.0), kind_probs={"t2v": 1.0})
    assert torch.all(t2v.y[:, :4] == 0) and t2v.captions == ["", "", ""] and torch.all(t2v.shifts == 5.0)
    zero_latent = codec.encode(torch.zeros(1, 3, 9, 32, 32))
    assert torch.allclose(t2v.y[:, 4:], zero_latent.expand(3, -1, -1, -1, -1), atol=1e-6)


def test_temporal_difference_term_weights_the_change_of_the_error_between_latent_frames():
    """lambda * mean((e[t] - e[t-1])^2) over latent frames t >= 2 is added to the plain MSE; the
    per-sample figures stay the plain MSE. Checked against the error computed from one forward by hand."""
    codec = micro_codec()
    cfg = micro_cfg(frames=13)  # 4 latent frames: pairs (1, 2) and (2, 3)
    model, text = build_models(codec, cfg, seed=0)
    torch.nn.init.normal_(model.head.head.weight, std=0.1)
    batch = make_batch(np.random.default_rng(3), codec, 2, cfg)
    u = torch.tensor([0.3, 0.8])
    noise = torch.randn(batch.x0.shape, generator=torch.Generator().manual_seed(6))
    plain, per_plain = flow_matching_loss(model, text, batch, torch.Generator(), u=u, noise=noise)
    loss, per = flow_matching_loss(model, text, batch, torch.Generator(), u=u, noise=noise,
                                   temporal_difference_weight=2.5)
    with torch.no_grad():
        sig = torch.tensor([float(sh) * uu / (1 + (float(sh) - 1) * uu) for uu, sh in zip(u.tolist(), batch.shifts)])
        s = sig.view(-1, 1, 1, 1, 1)
        v = model((1 - s) * batch.x0 + s * noise, sig * 1000, text.encode(batch.captions), batch.y, batch.positions)
        e = v - (noise - batch.x0)
    changes = [e[:, :, t] - e[:, :, t - 1] for t in (2, 3)]
    by_hand = sum(float((c ** 2).sum()) for c in changes) / (2 * e[:, :, 0].numel())
    assert per.tolist() == pytest.approx(per_plain.tolist(), rel=1e-6)
    assert loss.item() == pytest.approx(plain.item() + 2.5 * by_hand, rel=1e-4)
    assert by_hand > 0.01 * plain.item()  # the term is not negligible here, so the check can fail
    with pytest.raises(ValueError, match="temporal_difference_weight"):
        flow_matching_loss(model, text, batch, torch.Generator(), u=u, noise=noise, temporal_difference_weight=-1.0)


def test_shifted_sigmas_and_lr_schedule():
    u = torch.tensor([0.0, 0.5, 1.0, 0.25])
    s = shifted_sigmas(u, torch.tensor([3.0, 3.0, 5.0, 5.0]))
    assert torch.allclose(s, torch.tensor([0.0, 0.75, 1.0, 1.25 / 2.0]))
    cfg = micro_cfg(lr=1e-3, warmup=10, min_lr_ratio=0.1)
    assert math.isclose(lr_at(0, 100, cfg), 1e-4) and math.isclose(lr_at(9, 100, cfg), 1e-3)
    assert math.isclose(lr_at(10, 100, cfg), 1e-3)
    assert math.isclose(lr_at(55, 100, cfg), 1e-3 * (0.1 + 0.9 * 0.5))
    assert math.isclose(lr_at(100, 100, cfg), 1e-4)


def test_flow_matching_loss_matches_direct_formula():
    codec = micro_codec()
    cfg = micro_cfg()
    model, text = build_models(codec, cfg, seed=0)
    torch.nn.init.normal_(model.head.head.weight, std=0.1)  # non-zero output
    batch = make_batch(np.random.default_rng(2), codec, 3, cfg)
    u = torch.tensor([0.2, 0.5, 0.9])
    noise = torch.randn(batch.x0.shape, generator=torch.Generator().manual_seed(5))
    loss, per = flow_matching_loss(model, text, batch, torch.Generator(), u=u, noise=noise)
    with torch.no_grad():
        sig = [float(sh) * uu / (1 + (float(sh) - 1) * uu) for uu, sh in zip(u.tolist(), batch.shifts)]
        expect = []
        for i in range(3):
            xt = (1 - sig[i]) * batch.x0[i : i + 1] + sig[i] * noise[i : i + 1]
            ctx = text.encode([batch.captions[i]])
            v = model(xt, torch.tensor([sig[i] * 1000]), ctx, batch.y[i : i + 1], batch.positions[i : i + 1])
            expect.append(float(((v - (noise[i : i + 1] - batch.x0[i : i + 1])) ** 2).mean()))
    assert per.tolist() == pytest.approx(expect, rel=1e-4)
    assert loss.item() == pytest.approx(sum(expect) / 3, rel=1e-4)


def test_replay_pool_fifo_and_sampling():
    codec = micro_codec()
    batch = make_batch(np.random.default_rng(0), codec, 5, micro_cfg())
    pool = ReplayPool(3)
    pool.add(batch)
    assert len(pool) == 3
    # capacity 3, 5 samples: entries 3 and 4 replaced the two oldest (0 and 1)
    for slot, i in enumerate((3, 4, 2)):
        assert torch.equal(pool.buffers["x0"][slot], batch.x0[i])
        assert torch.equal(pool.buffers["y"][slot], batch.y[i])
        assert pool.captions[slot] == batch.captions[i] and pool.kinds[slot] == batch.kinds[i]
    drawn = pool.sample(3, torch.Generator().manual_seed(0))
    assert isinstance(drawn, Batch) and len(drawn) == 3
    # every drawn sample is one pooled sample, whole (latent, condition, caption and kind together)
    for j in range(3):
        i = next(i for i in (2, 3, 4) if torch.equal(batch.x0[i], drawn.x0[j]))
        assert torch.equal(drawn.y[j], batch.y[i]) and torch.equal(drawn.positions[j], batch.positions[i])
        assert drawn.captions[j] == batch.captions[i] and drawn.kinds[j] == batch.kinds[i]
    assert len({float(x.flatten()[0]) for x in drawn.x0}) == 3
    with pytest.raises(ValueError, match="cannot draw 4"):
        pool.sample(4, torch.Generator())


@pytest.mark.slow  # spawns render processes (seconds of start-up each)
def test_rendered_chunks_do_not_depend_on_the_worker_count():
    """The accelerator path's data stream is fixed by the seed: chunk i is the same whether rendered
    in this process or by two worker processes, and matches render_batch from its own generator."""
    cfg = micro_cfg()
    chunks = RenderedChunks(seed=5, n=2, cfg=cfg, temporal_factor=4, chunks=3)
    inline = list(rendered_chunk_loader(chunks, workers=0))
    parallel = list(rendered_chunk_loader(chunks, workers=2))
    assert len(inline) == len(parallel) == 3
    for a, b in zip(inline, parallel):
        assert torch.equal(a.clips, b.clips) and torch.equal(a.conditions, b.conditions)
        assert a.captions == b.captions and a.kinds == b.kinds and torch.equal(a.positions, b.positions)
    direct = render_batch(np.random.default_rng([5, 1]), 2, cfg, 4)
    assert inline[1].clips.dtype == torch.float16
    assert torch.allclose(inline[1].clips.float(), direct.clips, atol=1e-3)
    assert not torch.equal(inline[0].clips, inline[1].clips)


@pytest.mark.slow  # spawns render processes (seconds of start-up each)
def test_train_with_render_workers_is_reproducible(monkeypatch):
    """``train(workers=N)`` learns from the seed's :class:`RenderedChunks` stream whatever N is: a run with
    a worker process gives the losses of a ``workers=2`` run whose loader renders the same stream in
    this process. One process is spawned (the loader's independence of the worker count, two real
    workers against none, chunk by chunk, is the test above)."""
    codec = micro_codec()
    cfg = micro_cfg(pool=8)

    def run(workers):
        summary = train("unused", codec=codec, cfg=cfg, seed=0, steps=2, val_samples=2, save=False,
                        log_every=1, workers=workers)
        return [c["loss"] for c in summary["curve"]], summary["workers"]

    one = run(1)
    monkeypatch.setattr(train_dit, "rendered_chunk_loader", lambda dataset, workers: rendered_chunk_loader(dataset, 0))
    two = run(2)  # train()'s worker path, its chunks rendered here
    assert one[0] == two[0] and one[1] == 1 and two[1] == 2
    with pytest.raises(ValueError, match="workers"):
        train("unused", codec=codec, cfg=cfg, steps=1, save=False, workers=-1)


# -- training ----------------------------------------------------------------------------


def test_training_steps_overfit_a_fixed_batch():
    codec = micro_codec()
    cfg = micro_cfg()
    model, text = build_models(codec, cfg, seed=0)
    batch = make_batch(np.random.default_rng(4), codec, 4, cfg)
    u = torch.tensor([0.3, 0.5, 0.7, 0.9])
    noise = torch.randn(batch.x0.shape, generator=torch.Generator().manual_seed(1))
    params = list(model.parameters()) + list(text.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = flow_matching_loss(model, text, batch, torch.Generator(), u=u, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_train_is_reproducible_with_a_seed():
    codec = micro_codec()
    cfg = micro_cfg(pool=8)

    def run(seed):
        summary = train("unused", codec=codec, cfg=cfg, seed=seed, steps=3, val_samples=2, save=False,
                        log_every=1)
        model, text = summary["_ema"]
        return summary, torch.cat([p.flatten() for p in list(model.parameters()) + list(text.parameters())])

    s1, w1 = run(0)
    s2, w2 = run(0)
    _, w3 = run(1)
    assert s1["steps"] == 3 and len(s1["curve"]) == 3
    assert [c["loss"] for c in s1["curve"]] == [c["loss"] for c in s2["curve"]]
    assert torch.equal(w1, w2)
    assert not torch.equal(w1, w3)
    with pytest.raises(ValueError, match="steps"):
        train("unused", codec=codec, cfg=cfg, save=False)


@pytest.mark.slow
@pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                    reason="torch.compile (inductor) needs a C++ compiler on CPU")
def test_compiled_training_follows_the_eager_run():
    """``torch_compile=True`` trains the same model: same data, noise and sigma draws, and losses and
    weights equal to the eager run's up to float rounding (inductor fuses and reorders ops)."""
    codec = micro_codec()
    cfg = micro_cfg(pool=8)

    def run(torch_compile):
        summary = train("unused", codec=codec, cfg=cfg, seed=0, steps=3, val_samples=2, save=False,
                        log_every=1, torch_compile=torch_compile)
        model, _ = summary["_ema"]
        return summary, torch.cat([p.flatten() for p in model.parameters()])

    eager, w_eager = run(False)
    compiled, w_compiled = run(True)
    assert compiled["compiled"] and not eager["compiled"]
    assert [c["loss"] for c in compiled["curve"]] == pytest.approx([c["loss"] for c in eager["curve"]], rel=1e-4)
    assert torch.allclose(w_compiled, w_eager, atol=1e-5)
    assert not torch.equal(w_eager, torch.cat([p.flatten() for p in build_models(codec, cfg, 0)[0].parameters()]))


def test_train_writes_a_bundle_and_continues_from_it(tmp_path):
    from tempomaster_core.loading import load_dit

    from tempomaster_core.tiny.builtin import load_builtin
    from tempomaster_core.trained_limits import TrainedLimits

    codec = micro_codec()
    cfg = micro_cfg(pool=8, noise_frame_correlation=0.5)
    # a settings file already there keeps its keys; what the run trained on replaces its training limits
    (tmp_path / "defaults.json").write_text('{"cfg": 2.5, "trained_chunk_frames": 999}')
    train(tmp_path, codec=codec, cfg=cfg, seed=0, steps=2, val_samples=2, checkpoint_minutes=0)
    for name in ("dit.safetensors", "dit.json", "text_encoder.safetensors", "text_encoder.json",
                 "dit_train.json", "defaults.json"):
        assert (tmp_path / name).is_file()
    written = json.loads((tmp_path / "defaults.json").read_text())
    assert written == {"cfg": 2.5, "trained_frame_intervals": [4, 2, 1], "trained_chunk_frames": 9}  # 9-frame clips
    codec.save(tmp_path)
    bundle = load_builtin(directory=tmp_path)  # the bundle loaded from that directory declares them
    assert bundle.model.trained_limits == TrainedLimits((4, 2, 1), 9) and bundle.defaults["cfg"] == 2.5
    saved = load_dit(tmp_path / "dit.safetensors", dtype=torch.float32)
    assert saved.config.in_dim == 2 * 4 + 4 and saved.config.text_dim == cfg.text_dim
    # the source prior it was trained from travels with the weights, so sampling draws from it
    assert saved.config.noise_frame_correlation == 0.5
    assert json.loads((tmp_path / "dit.json").read_text())["noise_frame_correlation"] == 0.5
    # continuing with lr 0 leaves the weights (and their EMA) exactly where they started
    summary = train(tmp_path / "next", codec=codec, cfg=micro_cfg(pool=8, lr=0.0, noise_frame_correlation=0.5), seed=3, steps=1,
                    val_samples=2, save=False, init=tmp_path, schedule_steps=50)
    model, _ = summary["_ema"]
    assert summary["init"] == str(tmp_path) and summary["schedule_steps"] == 50
    for (name, a), (_, b) in zip(sorted(model.state_dict().items()), sorted(saved.state_dict().items())):
        assert torch.equal(a, b), name


def test_trained_limits_are_the_runs_clip_length_and_the_intervals_it_draws():
    from tempomaster_core.tiny.builtin import builtin_dir, bundle_limits
    from tempomaster_core.trained_limits import TrainedLimits
    from tempomaster_core.training.train_dit import trained_limits

    assert trained_limits(TrainConfig(), 4) == TrainedLimits((4, 2, 1), 25)
    # refinement patterns only: the levels of the (4,2,1) and (4,1) trees below the blueprint, intervals 2 and 1
    assert trained_limits(micro_cfg(kind_probs={"refine": 1.0}), 4) == TrainedLimits((2, 1), 9)
    assert trained_limits(micro_cfg(kind_probs={"t2v": 1.0, "refine": 0.0}), 4) == TrainedLimits((4, 2, 1), 9)
    with pytest.raises(ValueError, match="no pattern kind"):
        trained_limits(micro_cfg(kind_probs={"t2v": 0.0, "refine": 0.0}), 4)
    # the shipped bundle declares what its recorded run trained on
    recorded = json.loads((builtin_dir() / "dit_train.json").read_text())
    shipped = TrainConfig(**recorded["config"])
    assert trained_limits(shipped, recorded["codec"]["temporal_factor"]) == bundle_limits(builtin_dir())


def test_shipped_weights_were_trained_with_the_default_recipe():
    """The README/model-card command (`train_dit --out DIR --seed 0 --minutes 58`) uses TrainConfig's
    defaults, so they must be the recipe recorded with the shipped weights."""
    import json
    from dataclasses import asdict

    from tempomaster_core.tiny.builtin import builtin_dir

    recorded = json.loads((builtin_dir() / "dit_train.json").read_text())
    assert recorded["init"] is None, "the shipped weights must come from one run from scratch"
    assert recorded["seed"] == 0
    defaults = asdict(TrainConfig())
    assert set(recorded["config"]) <= set(defaults), "the record names a field TrainConfig no longer has"
    # a field added after the run defaults to the behaviour before it existed, so it is absent from the record
    assert {k: recorded["config"].get(k, v) for k, v in defaults.items()} == defaults


def test_blueprint_t0_max_starts_blueprint_clips_early_and_leaves_refinement_clips():
    # render_sample with start_range (0, 1): the clip is the scene from its very first frame
    draw = ConditionDraw("t2v", 2, 1, 5, ())
    clip = render_sample(np.random.default_rng(0), draw, size=32, start_range=(0, 1))[0]
    spec = sample_scene(int(np.random.default_rng(0).integers(0, HELD_OUT_SEED_BASE)), height=32, width=32)
    assert torch.allclose(clip, render_frames(spec, [0, 2, 4, 6, 8]))
    # through TrainConfig: blueprint-case clips change, refinement clips are exactly the default recipe's
    for kind, changes in (("t2v", True), ("refine", False)):
        early = render_batch(np.random.default_rng(3), 3, micro_cfg(blueprint_t0_max=1), 4, kind_probs={kind: 1.0})
        default = render_batch(np.random.default_rng(3), 3, micro_cfg(), 4, kind_probs={kind: 1.0})
        assert early.kinds == default.kinds == [kind] * 3
        assert torch.equal(early.clips, default.clips) is not changes
