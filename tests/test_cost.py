"""Cost model: the paper's ablation table, per-pass FLOPs and CFG, monotonic attention,
the full-sequence baseline, weights and memory terms, VAE work."""

import math

import pytest
import torch

from tempomaster_core.config import DiTConfig
from tempomaster_core.cost import (
    FP8_LAYERS_PER_BLOCK,
    GIB,
    KNOWN_CONFIGS,
    CostError,
    LevelWork,
    RunSettings,
    activation_bytes,
    dit_block_bytes,
    dit_fp8_parameter_count,
    dit_parameter_count,
    dit_weight_bytes,
    estimate_levels_cost,
    estimate_plan_cost,
    level_cost,
    levels_from_plan,
    paper_ablation_levels,
    plan_level_cost,
    round_down_frames,
    vae_flops,
)
from tempomaster_core.flops import dit_forward_flops
from tempomaster_core.fp8 import is_fp8_weight
from tempomaster_core.model import TempoMasterDiT
from tempomaster_core.plan import TreePlan
from tiny_models import tiny_config

# Paper ablation (121 frames at 24 fps, Wan 14B): (level fps, chunks per level) -> PFLOPs.
PAPER_TABLE = [
    ((6, 24), (1, 4), 74.05),
    ((6, 24), (1, 8), 66.91),
    ((6, 12, 24), (1, 2, 4), 108.89),
    ((6, 12, 24), (1, 4, 8), 96.99),
    ((6, 12, 24), (1, 8, 8), 95.13),
]


@pytest.mark.parametrize("fps, chunks, pflops", PAPER_TABLE)
def test_paper_ablation_rows_within_5_percent(fps, chunks, pflops):
    levels = paper_ablation_levels(fps, chunks, final_frames=121)
    # 480x848 = the reference's area-preserving size for 16:9; the table counts one pass per step
    cost = estimate_levels_cost(levels, DiTConfig(), height=480, width=848, cfg=1.0)
    assert abs(cost.dit_flops / 1e15 - pflops) / pflops < 0.05
    assert all(lv.passes_per_step == 1 for lv in cost.levels)


def test_paper_sizing_by_hand():
    # 121 frames at 24 fps span 5 s: 31 frames at 6 fps, 61 at 12 fps; chunk lengths rounded down to 4n+1
    levels = paper_ablation_levels((6, 12, 24), (1, 8, 8))
    assert [lv.num_frames for lv in levels] == [31, 61, 121]
    assert [lv.frames_per_chunk for lv in levels] == [29, 5, 13]  # 31 -> 29, 61/8 = 7.6 -> 5, 121/8 = 15.1 -> 13
    assert [lv.steps for lv in levels] == [50, 32, 32]
    assert [lv.steps for lv in paper_ablation_levels((6, 24), (1, 4))] == [50, 30]
    assert [round_down_frames(x) for x in (31, 30.25, 7.625, 5, 4.9)] == [29, 29, 5, 5, 1]
    with pytest.raises(CostError):
        paper_ablation_levels((6, 24), (1,))


def test_one_level_by_hand_and_cfg_doubles_passes():
    config = DiTConfig()
    work = LevelWork(chunks=4, frames_per_chunk=29, steps=30)
    one = level_cost(work, config, height=480, width=848, cfg=1.0)
    two = level_cost(work, config, height=480, width=848, cfg=8.0)
    # 29 frames -> 8 latent frames; 480x848 -> latent 60x106 -> 30x53 patches
    assert one.latent_frames_per_chunk == 8 and one.tokens_per_chunk == 8 * 30 * 53
    assert one.flops_per_pass == 4 * dit_forward_flops(config, 12720)
    assert one.dit_flops == 30 * one.flops_per_pass
    assert two.flops_per_pass == one.flops_per_pass and two.passes_per_step == 2
    assert two.dit_flops == 2 * one.dit_flops
    # attention matmuls by hand: QK^T and PV, 2 FLOPs per multiply-add, 40 layers, 4 chunks
    assert one.attention_flops_per_pass == 4 * 40 * 2 * 2 * 12720**2 * 5120


def test_more_chunks_over_the_same_frames_never_increase_attention():
    config = DiTConfig()
    latent_total = 24  # the same 24 latent frames split into C chunks of 24 / C
    previous = math.inf
    for chunks in (1, 2, 3, 4, 6, 8, 12):
        latent = latent_total // chunks
        work = LevelWork(chunks, 4 * (latent - 1) + 1, 32)
        attention = level_cost(work, config, height=480, width=832).attention_flops_per_pass
        assert attention < previous
        previous = attention


def test_more_chunks_on_the_reference_level_lower_attention():
    # the 436-frame 24 fps level of the reference tree with 1, 2, 4, 8 chunks (TreePlan's lengths)
    values = []
    for chunks in (1, 2, 4, 8):
        plan = TreePlan(109, (4, 2, 1), (2, chunks), height=480, width=832)
        values.append(estimate_plan_cost(plan).levels[2].attention_flops_per_pass)
    assert values == sorted(values, reverse=True) and len(set(values)) == 4


def test_full_sequence_baseline_is_larger_for_long_videos():
    for blueprint in (61, 109):
        plan = TreePlan(blueprint, (4, 2, 1), height=480, width=832)
        cost = estimate_plan_cost(plan)
        full = cost.full_sequence
        frames = plan.final.num_frames
        assert full.work.chunks == 1 and full.work.frames_per_chunk >= frames
        assert full.work.frames_per_chunk - frames < 4 and (full.work.frames_per_chunk - 1) % 4 == 0
        assert full.work.steps == 50
        assert full.dit_flops > cost.dit_flops
        assert cost.saving_vs_full_sequence > 1
    # the reference 18 s tree: 436 frames as one pass would be 110 latent frames x 1560 tokens
    cost = estimate_plan_cost(TreePlan(109, (4, 2, 1), height=480, width=832))
    assert cost.full_sequence.tokens_per_chunk == 110 * 1560
    assert cost.saving_vs_full_sequence > 2


def test_plan_levels_and_steps():
    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    works = levels_from_plan(plan)
    assert [(w.chunks, w.frames_per_chunk, w.steps) for w in works] == [(1, 109, 50), (2, 109, 32), (4, 109, 32)]
    assert [w.steps for w in levels_from_plan(plan, 10)] == [10, 10, 10]
    assert [w.steps for w in levels_from_plan(plan, (40, 20, 10))] == [40, 20, 10]
    with pytest.raises(CostError, match="one per level"):
        levels_from_plan(plan, (40, 20))
    cost = estimate_plan_cost(plan)
    assert cost.dit_flops == sum(lv.dit_flops for lv in cost.levels)
    # 28 latent frames x 30 x 52 patches per chunk; 50 + 2x32 + 4x32 chunk-steps, 2 passes each
    per_chunk = dit_forward_flops(DiTConfig(), 28 * 30 * 52)
    assert cost.dit_flops == 2 * per_chunk * (50 + 2 * 32 + 4 * 32)
    data = cost.to_dict()
    assert data["dit_pflops"] == pytest.approx(cost.dit_flops / 1e15)
    assert len(data["levels"]) == 3 and data["full_sequence"]["label"] == "full sequence"


@pytest.mark.parametrize("name", ["14B", "1.3B"])
def test_parameter_count_matches_the_model(name):
    config = KNOWN_CONFIGS[name]
    with torch.device("meta"):
        model = TempoMasterDiT(config)
    assert dit_parameter_count(config) == sum(p.numel() for p in model.parameters())
    assert dit_weight_bytes(config, "bf16") == 2 * dit_parameter_count(config)
    assert dit_weight_bytes(config, "fp32") == 4 * dit_parameter_count(config)
    fp8 = sum(p.numel() for n, p in model.named_parameters() if is_fp8_weight(n))
    assert dit_fp8_parameter_count(config) == fp8 > 0.98 * dit_parameter_count(config)
    scales = 4 * FP8_LAYERS_PER_BLOCK * config.num_layers
    assert dit_weight_bytes(config, "fp8") == fp8 + 2 * (dit_parameter_count(config) - fp8) + scales
    per_block = sum(p.numel() for p in model.blocks[0].parameters())
    assert dit_block_bytes(config, "bf16") == 2 * per_block


def test_tiny_parameter_count_matches_the_model():
    config = tiny_config(in_dim=20, out_dim=8, patch_size=(1, 2, 2))
    assert dit_parameter_count(config) == sum(p.numel() for p in TempoMasterDiT(config).parameters())


def test_memory_terms():
    config = DiTConfig()
    work = LevelWork(chunks=4, frames_per_chunk=109, steps=32)
    full = level_cost(work, config, height=480, width=832, cfg=8.0)
    serial = level_cost(work, config, height=480, width=832, cfg=8.0, max_batch=1)
    unguided = level_cost(work, config, height=480, width=832, cfg=1.0)
    assert (full.batch, serial.batch, unguided.batch) == (8, 2, 4)
    # activations are linear in the batch; FLOPs do not depend on it
    assert full.activation_bytes == 4 * serial.activation_bytes == 2 * unguided.activation_bytes
    assert full.dit_flops == serial.dit_flops
    assert full.peak_bytes == full.weight_bytes + max(full.activation_bytes + full.state_bytes, full.vae_bytes)
    assert full.weight_bytes == 2 * 14_288_901_184
    # a materialised score matrix adds heads x tokens^2 x (2 + 4) bytes per item
    tokens = 28 * 30 * 52
    extra = activation_bytes(config, tokens, 1, attention="math") - activation_bytes(config, tokens, 1)
    assert extra == 40 * tokens * tokens * 6
    with pytest.raises(CostError, match="dtype"):
        level_cost(work, config, height=480, width=832, dtype="int4")
    with pytest.raises(CostError, match="attention"):
        level_cost(work, config, height=480, width=832, attention="paged")


def test_bad_inputs_raise_cost_errors():
    config = DiTConfig()
    with pytest.raises(CostError, match="4\\*n\\+1"):
        level_cost(LevelWork(1, 30, 10), config, height=480, width=832)
    with pytest.raises(CostError, match="multiples"):
        level_cost(LevelWork(1, 29, 10), config, height=470, width=832)
    with pytest.raises(CostError, match="chunks"):
        LevelWork(0, 29, 10)
    with pytest.raises(CostError, match="steps"):
        LevelWork(1, 29, 2.5)
    with pytest.raises(CostError, match="no levels"):
        estimate_levels_cost([], config, height=480, width=832)


def test_vae_work_scales_with_frames_and_area():
    enc_81 = vae_flops(81, 480, 832, encode=True)
    enc_161 = vae_flops(161, 480, 832, encode=True)
    dec_81 = vae_flops(81, 480, 832, encode=False)
    assert enc_161 / enc_81 == pytest.approx(2.0, rel=0.02)
    assert dec_81 > enc_81  # the decoder has a residual block more per stage
    # convolutions dominate: twice the area, about twice the work
    assert vae_flops(81, 480, 1664, encode=False) / dec_81 == pytest.approx(2.0, rel=0.02)
    # the first conv by hand: 3 -> 96 channels, 3x3x3 kernel, every voxel of 81x480x832
    assert enc_81 > 2 * 27 * 3 * 96 * 81 * 480 * 832
    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    cost = estimate_plan_cost(plan)
    level = cost.levels[2]  # 4 chunks of 109 frames encoded and decoded
    assert level.vae_decode_flops == pytest.approx(4 * vae_flops(109, 480, 832, encode=False))
    assert cost.total_flops == pytest.approx(cost.dit_flops + cost.vae_flops)
    assert cost.vae_flops < 0.05 * cost.dit_flops
    assert GIB == 2**30


def test_run_settings_are_one_value_or_keywords():
    """The run settings priced (dtype, block swap ...) given as one RunSettings or as keywords are the
    same; keywords replace fields of the value; plan_level_cost is the plan's level; bad names refused."""
    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    fp8 = RunSettings(dtype="fp8", blocks_to_swap=16)
    by_value = estimate_plan_cost(plan, max_batch=1, runtime=fp8)
    assert by_value.to_dict() == estimate_plan_cost(plan, max_batch=1, dtype="fp8", blocks_to_swap=16).to_dict()
    assert by_value.settings["blocks_to_swap"] == 16 and "blocks_to_swap" not in estimate_plan_cost(plan).settings
    resident = estimate_plan_cost(plan, max_batch=1, runtime=fp8, blocks_to_swap=0)
    assert resident.peak_bytes > by_value.peak_bytes
    level = plan_level_cost(plan, 2, DiTConfig(), steps=32, cfg=8.0, max_batch=1, runtime=fp8)
    assert level == by_value.levels[2]
    with pytest.raises(TypeError, match="blocks_to_sawp"):
        estimate_plan_cost(plan, blocks_to_sawp=2)
    with pytest.raises(CostError, match="blocks_to_swap"):
        level_cost(by_value.levels[0].work, KNOWN_CONFIGS["1.3B"], height=480, width=832, blocks_to_swap=31)
    with pytest.raises(CostError, match="attention"):
        RunSettings(attention="paged")


def test_levels_on_devices_follow_the_runtime_split():
    """By hand: the reference tree's levels and a 3-chunk level, on 1, 2 and 8 devices."""
    from tempomaster_core.cost_devices import plan_on_devices

    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    cost = estimate_plan_cost(plan)
    rate, link = 4e14, 1e11
    one = plan_on_devices(cost, 1, flops_per_second=rate, link_bytes_per_second=link)
    assert [lv.mode for lv in one] == ["single"] * 3 and all(lv.speedup == 1.0 for lv in one)
    assert one[2].seconds == pytest.approx(cost.levels[2].total_flops / rate)
    two = plan_on_devices(cost, 2, flops_per_second=rate, link_bytes_per_second=link)
    assert [(lv.mode, lv.items) for lv in two] == [("batch", (1, 1)), ("chunks", (2, 2)), ("chunks", (4, 4))]
    blueprint = cost.levels[0]
    latent = 4 * 16 * 28 * 60 * 104  # float32 velocity of one item, [16, 28, 60, 104]
    video = 4 * 3 * 109 * 480 * 832  # float32 decoded chunk
    assert two[0].comm_bytes == 50 * latent + video  # a velocity per step, the decoded chunk once
    assert two[0].seconds == pytest.approx((blueprint.dit_flops / 2 + blueprint.vae_encode_flops
                                            + blueprint.vae_decode_flops) / rate + two[0].comm_bytes / link)
    eight = plan_on_devices(cost, 8, flops_per_second=rate, link_bytes_per_second=link)
    assert eight[0].items == (1, 1, 0, 0, 0, 0, 0, 0) and eight[2].items == (1,) * 8
    assert eight[0].speedup < 2.0 < eight[2].speedup
    # 3 chunks on 2 devices: guided -> 3 items each (batch); cfg 1 -> chunks 2 + 1, the slower share is 2/3
    uneven = estimate_plan_cost(TreePlan(13, (4, 1), (3,), height=32, width=32), steps=[2, 2], cfg=[1.0, 4.0])
    assert plan_on_devices(uneven, 2, flops_per_second=rate, link_bytes_per_second=link)[1].items == (3, 3)
    unguided = estimate_plan_cost(TreePlan(13, (4, 1), (3,), height=32, width=32), steps=[2, 2], cfg=1.0)
    level = plan_on_devices(unguided, 2, flops_per_second=rate, link_bytes_per_second=1e30)[1]
    assert level.mode == "chunks" and level.items == (2, 1)
    assert level.seconds == pytest.approx(unguided.levels[1].total_flops * 2 / 3 / rate)
    # one count per level (each sampler its own device list): each level as on that many devices
    mixed = plan_on_devices(cost, [2, 1, 8], flops_per_second=rate, link_bytes_per_second=link)
    assert mixed == (two[0], one[1], eight[2])
    with pytest.raises(CostError, match="one per level"):
        plan_on_devices(cost, [2, 2], flops_per_second=rate, link_bytes_per_second=link)
    with pytest.raises(CostError, match="devices must be >= 1"):
        plan_on_devices(cost, 0, flops_per_second=rate, link_bytes_per_second=link)
