"""Block swap on CPU: the same outputs as the resident DiT, swapped weights off the compute slots
between forwards, two slots at most, the cost model's bytes."""

import copy

import pytest
import torch

from tempomaster_core.block_swap import BlockSwap
from tempomaster_core.cost import dit_block_bytes
from tempomaster_core.loading import load_dit
from tiny_models import forward, make_tiny_dit, tiny_inputs


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_dit(seed=0, num_layers=5)


@pytest.fixture(scope="module")
def inputs(tiny):
    return tiny_inputs(tiny.config)


def storage(tensor):
    return tensor.untyped_storage().data_ptr()


@pytest.mark.parametrize("swapped", [1, 5])
def test_block_swap_gives_the_resident_models_output(tiny, inputs, swapped):
    model = copy.deepcopy(tiny)
    swap = BlockSwap(model, swapped, "cpu")
    first, second = forward(model, inputs), forward(model, inputs)
    want = forward(tiny, inputs)
    assert torch.equal(first, want) and torch.equal(second, want)
    assert swap.copies == 2 * swapped  # every swapped block copied once per forward
    assert model.device == torch.device("cpu")


def test_swapped_weights_live_in_host_copies_and_run_from_two_slots(tiny, inputs):
    model = copy.deepcopy(tiny)
    swap = BlockSwap(model, 3, "cpu")
    host = {i: [storage(p) for p in model.blocks[i].parameters()] for i in range(3)}
    slots = [{storage(t) for t in slot} for slot in swap._slots]
    seen = []
    for index in range(5):  # registered after the swap's hooks: runs once the block is loaded
        model.blocks[index].register_forward_pre_hook(
            lambda module, args, index=index: seen.append((index, {storage(p) for p in module.parameters()})))
    forward(model, inputs)
    for index, ptrs in seen[:3]:  # a swapped block runs from its slot, never from the host copy
        assert ptrs == slots[index % 2] and not ptrs & set(host[index])
    for index, ptrs in seen[3:]:  # resident blocks keep their own storage
        assert not ptrs & (slots[0] | slots[1])
    # between forwards every swapped parameter points at its host copy again
    assert {i: [storage(p) for p in model.blocks[i].parameters()] for i in range(3)} == host
    assert len(swap._slots) == 2
    config = tiny.config
    assert swap.device_bytes() == 2 * dit_block_bytes(config, "fp32")  # the cost model's two blocks in flight
    assert swap.host_bytes() == 3 * dit_block_bytes(config, "fp32")
    swap.remove()
    assert torch.equal(forward(model, inputs), forward(tiny, inputs))


def test_block_swap_with_fp8_weights(tiny, inputs):
    resident = load_dit(tiny.state_dict(), dtype="fp8_e4m3fn", num_heads=2)
    model = copy.deepcopy(resident)
    swap = BlockSwap(model, 4, "cpu")
    assert torch.equal(forward(model, inputs), forward(resident, inputs))
    assert swap.device_bytes() == 2 * dit_block_bytes(tiny.config, "fp8_e4m3fn")


def test_bad_block_counts_are_refused(tiny):
    model = copy.deepcopy(tiny)  # refused before anything moves
    for bad in (-1, 6, 2.5, True):
        with pytest.raises(ValueError, match="0..5"):
            BlockSwap(model, bad, "cpu")
