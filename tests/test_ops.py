"""The operations hook: the DiT's layers come from the namespace it is given (as ComfyUI's models
take ``operations=comfy.ops.<...>``); layers cast their weights to the input's dtype and device."""

from types import SimpleNamespace

import pytest
import torch

from tempomaster_core.model import TempoMasterDiT
from tempomaster_core.ops import CastLinear, CastOps
from tiny_models import forward, make_tiny_dit, tiny_config, tiny_inputs


def recording_ops():
    made = []

    def tagged(base):
        class Tagged(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                made.append(base.__name__)
        return Tagged

    return SimpleNamespace(Linear=tagged(torch.nn.Linear), Conv3d=tagged(torch.nn.Conv3d),
                           LayerNorm=tagged(torch.nn.LayerNorm)), made


def test_every_linear_conv_and_affine_norm_comes_from_the_namespace():
    ops, made = recording_ops()
    model = TempoMasterDiT(tiny_config(), operations=ops)
    layers = 2
    # per block: q, k, v, o twice + 2 FFN layers; text 2, time 2, time projection 1, head 1
    assert made.count("Linear") == 10 * layers + 6
    assert made.count("Conv3d") == 1 and made.count("LayerNorm") == layers  # norm3 of each block
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(type(m).__name__ == "Tagged" for m in linear)


def test_plain_torch_nn_layers_give_the_same_fp32_forward():
    tiny = make_tiny_dit(seed=0)
    plain = TempoMasterDiT(tiny.config, operations=torch.nn)
    plain.load_state_dict(tiny.state_dict())
    inputs = tiny_inputs(tiny.config)
    assert torch.equal(forward(plain.eval(), inputs), forward(tiny, inputs))
    assert isinstance(tiny.blocks[0].ffn[0], CastLinear) and tiny.blocks[0].ffn[0].__class__ is CastOps.Linear


def test_cast_linear_computes_in_the_inputs_dtype_with_scale_and_weight_functions():
    layer = CastLinear(4, 3).to(torch.bfloat16)
    x = torch.randn(2, 4)
    want = torch.nn.functional.linear(x, layer.weight.float(), layer.bias.float())
    assert torch.equal(layer(x), want) and layer(x).dtype == torch.float32
    layer.scale_weight = torch.nn.Parameter(torch.tensor(0.5), requires_grad=False)
    layer.weight_functions.append(lambda w: w + 1.0)
    want = torch.nn.functional.linear(x, layer.weight.float() * 0.5 + 1.0, layer.bias.float())
    assert torch.allclose(layer(x), want)


def test_a_namespace_without_the_layer_classes_is_refused():
    with pytest.raises(TypeError, match="lacks Conv3d, LayerNorm"):
        TempoMasterDiT(tiny_config(), operations=SimpleNamespace(Linear=torch.nn.Linear))
