"""MaskedRouting: unmasked it changes nothing, masked it never selects a dropped expert, it
detaches cleanly, and families it cannot re-route are refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers

from core.errors import LensError
from core.evaluate.masking import MaskedRouting
from core.families.base import FamilyAdapter
from core.families.layers import find_moe_layers

TOKENS = torch.tensor([[5, 17, 99, 3, 250, 41, 7, 7], [201, 8, 8, 90, 14, 300, 6, 77]])


def load(folder):
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return model.eval()


def logits(model):
    with torch.no_grad():
        return model(TOKENS).logits


@pytest.mark.parametrize("family", ["gpt_oss", "mixtral", "deepseek_v3"])
def test_unmasked_is_bitwise_the_original_and_masked_never_routes_to_dropped(tiny_model, family):
    model = load(tiny_model(family))
    layers = find_moe_layers(model)
    before = logits(model)
    keep = np.zeros((2, 8), dtype=bool)
    keep[0, [0, 2, 5, 7]] = True
    keep[1, [1, 3, 4, 6]] = True
    chosen: list[torch.Tensor] = []
    spy = [
        layer.experts.register_forward_pre_hook(lambda m, args: chosen.append(args[1].clone()))
        for layer in layers
    ]
    with MaskedRouting(layers, family) as routing:
        routing.use(None)
        assert torch.equal(logits(model), before)
        assert routing.calls() == [1, 1]
        chosen.clear()
        routing.use(keep)
        masked = logits(model)
        assert routing.calls() == [1, 1]
    for layer_index, index in enumerate(chosen):
        used = set(index.flatten().tolist())
        assert used <= set(np.flatnonzero(keep[layer_index]).tolist()), (layer_index, used)
    for handle in spy:
        handle.remove()
    assert (masked - before).abs().max() > 1e-4
    for layer in layers:
        assert not layer.router._forward_hooks  # detached
    assert torch.equal(logits(model), before)


def test_unsupported_families_are_refused():
    layer = SimpleNamespace(
        family=FamilyAdapter(name="generic", label="generic", router_attr="gate")
    )
    with pytest.raises(LensError, match="not supported for the 'generic' MoE family"):
        MaskedRouting([layer], "meta-llama/Llama-4")


def test_masks_keeping_fewer_than_top_k_are_refused(tiny_model):
    model = load(tiny_model("gpt_oss"))
    layers = find_moe_layers(model)
    keep = np.ones((2, 8), dtype=bool)
    keep[1, 1:] = False
    with MaskedRouting(layers) as routing, pytest.raises(LensError, match="fewer than"):
        routing.use(keep)
