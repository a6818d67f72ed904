"""AIMER scores read lazily from safetensors, against a direct computation on loaded weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.errors import LensError
from core.formats.mask import Mask
from core.io.safetensors import OutTensor, fill_piece, write_safetensors
from core.masks.make import make_mask
from core.prune.aimer import aimer_checkpoint_scores, aimer_scores
from core.prune.surgery import prune_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def direct_scores(folder) -> np.ndarray:
    """−mean|θ|/rms over each expert's gate/up/down weights, from the model transformers loads."""
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder))
    rows = []
    for layer in model.model.layers:
        experts = layer.mlp.experts
        row = []
        for e in range(experts.gate_up_proj.shape[0]):
            theta = torch.cat(
                [experts.gate_up_proj[e].reshape(-1), experts.down_proj[e].reshape(-1)]
            ).double()
            row.append(-(theta.abs().mean() / theta.pow(2).mean().sqrt()).item())
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize(
    "family,dtype,shards",
    [
        ("gpt_oss", "float32", False),
        ("mixtral", "float32", True),
        ("qwen3_moe", "bfloat16", False),
        ("deepseek_v3", "float32", False),
    ],
)
def test_aimer_matches_a_direct_computation(tiny_model, family, dtype, shards):
    folder = tiny_model(family, shards=shards, dtype=dtype)
    result = aimer_scores(folder)
    expected = direct_scores(folder)
    assert result.scores.shape == expected.shape == (2, 8)
    np.testing.assert_allclose(result.scores, expected, rtol=1e-9, atol=0)
    assert not any("bias" in name for name in result.weights)
    assert not any("shared" in name for name in result.weights)


def test_aimer_mask_keeps_the_highest_scores(tiny_model, tmp_path):
    folder = tiny_model("mixtral")
    mask = make_mask("aimer", aimer=aimer_checkpoint_scores(str(folder)), r=3)
    expected = direct_scores(folder)
    for layer, kept in enumerate(mask.layers):
        best = sorted(range(8), key=lambda e: (-expected[layer, e], e))[:3]
        assert kept == sorted(best)
    assert mask.sources == [] and mask.top_k == 2 and mask.model == str(folder)


FP4 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def _mxfp4_checkpoint(folder, rng):
    """A one-layer GPT-OSS-style checkpoint with MXFP4 expert weights (blocks + scales)."""
    from safetensors.numpy import save_file

    folder.mkdir()
    tensors = {
        "model.layers.0.mlp.router.weight": rng.standard_normal((4, 8)).astype(np.float32),
        "model.layers.0.mlp.router.bias": rng.standard_normal(4).astype(np.float32),
        "model.layers.0.mlp.experts.gate_up_proj_blocks": rng.integers(
            0, 256, (4, 6, 2, 16), dtype=np.uint8
        ),
        "model.layers.0.mlp.experts.gate_up_proj_scales": rng.integers(
            120, 134, (4, 6, 2), dtype=np.uint8
        ),
        "model.layers.0.mlp.experts.gate_up_proj_bias": rng.standard_normal((4, 6)).astype(
            np.float32
        ),
        "model.layers.0.mlp.experts.down_proj_blocks": rng.integers(
            0, 256, (4, 8, 1, 16), dtype=np.uint8
        ),
        "model.layers.0.mlp.experts.down_proj_scales": rng.integers(
            120, 134, (4, 8, 1), dtype=np.uint8
        ),
        "model.layers.0.mlp.experts.down_proj_bias": rng.standard_normal((4, 8)).astype(np.float32),
    }
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "model_type": "gpt_oss",
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 1,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return tensors


def test_aimer_reads_mxfp4_blocks_like_a_value_by_value_dequantisation(tmp_path):
    tensors = _mxfp4_checkpoint(tmp_path / "mx", np.random.default_rng(0))
    expected = []
    for e in range(4):
        values = []
        for name in ("gate_up_proj", "down_proj"):
            blocks = tensors[f"model.layers.0.mlp.experts.{name}_blocks"][e]
            scales = tensors[f"model.layers.0.mlp.experts.{name}_scales"][e]
            for index in np.ndindex(*scales.shape):
                scale = 2.0 ** (int(scales[index]) - 127)
                for byte in blocks[index]:
                    values.append(FP4[int(byte) & 0x0F] * scale)
                    values.append(FP4[int(byte) >> 4] * scale)
        mean_abs = sum(abs(v) for v in values) / len(values)
        rms = math.sqrt(sum(v * v for v in values) / len(values))
        expected.append(-mean_abs / rms)
    result = aimer_scores(tmp_path / "mx")
    np.testing.assert_allclose(result.scores[0], expected, rtol=1e-12)


def test_aimer_refuses_fp8_weights(tmp_path):
    folder = tmp_path / "fp8"
    folder.mkdir()
    tensors = [
        OutTensor("model.layers.0.mlp.gate.weight", "F32", (2, 4), (fill_piece(b"\0" * 4, 8),)),
    ]
    for e in range(2):
        tensors.append(
            OutTensor(
                f"model.layers.0.mlp.experts.{e}.w1.weight",
                "F8_E4M3",
                (4, 4),
                (fill_piece(b"\x38", 16),),
            )
        )
    write_safetensors(folder / "model.safetensors", tensors, {"format": "pt"})
    config = {"model_type": "mixtral", "num_local_experts": 2, "num_hidden_layers": 1}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        LensError, match=r"aimer cannot read expert tensor .*w1\.weight \(F8_E4M3\)"
    ):
        aimer_scores(folder)


def test_mxfp4_checkpoint_prunes_blocks_scales_and_biases_by_expert(tmp_path):
    from safetensors.numpy import load_file

    tensors = _mxfp4_checkpoint(tmp_path / "mx", np.random.default_rng(1))
    mask = Mask(model="mx", num_experts=4, criterion="t", sources=[], layers=[[1, 3]])
    prune_checkpoint(tmp_path / "mx", mask, tmp_path / "out")
    pruned = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert set(pruned) == set(tensors)
    for name, original in tensors.items():
        np.testing.assert_array_equal(pruned[name], original[[1, 3]], err_msg=name)
