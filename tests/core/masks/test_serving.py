"""Masks for serving engines: plain per-layer lists and vLLM's approximate_experts."""

from __future__ import annotations

import pytest

from core.errors import LensError
from core.formats.mask import Mask
from core.masks.serving import plain_lists, vllm_approximate_experts

MASK = Mask(model="m", num_experts=6, criterion="t", sources=[], layers=[[4, 0, 2], [1, 5]])


def test_plain_is_one_sorted_line_per_moe_layer():
    assert plain_lists(MASK) == "0 2 4\n1 5\n"


def test_vllm_keys_are_decoder_layer_numbers_and_values_the_dropped_experts():
    # MoE layers 0 and 1 are decoder layers 3 and 5 (dense first layers, MoE every other).
    assert vllm_approximate_experts(MASK, [3, 5]) == {
        "approximate_experts": {"3": [1, 3, 5], "5": [0, 2, 3, 4]}
    }
    with pytest.raises(LensError, match="2 MoE layers but the model has 3"):
        vllm_approximate_experts(MASK, [1, 2, 3])
