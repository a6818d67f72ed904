"""``--stream-layers`` on MXFP4 and FP8 checkpoints: decoded per layer, the same bundle as floats.

Each test quantises a tiny model's own weights with an encoder written here
from the format's definition (not the code under test, not transformers'),
decodes them again by hand into a float "twin" checkpoint, and checks that a
streamed collection of the quantised checkpoint equals a whole-model
collection of the twin: ``topk_count`` exactly, float statistics within 1e-6.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from core.collect.runner import run_collection
from core.errors import LensError
from tests.core.collect.test_streaming import _config, assert_same_bundle
from tests.tiny_models import FP4_VALUES, build_tiny_model, dequantize_mxfp4


def _checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(folder / "model.safetensors")), json.loads(
        (folder / "config.json").read_text()
    )


def _save(folder: Path, source: Path, state: dict, config: dict) -> Path:
    """A copy of ``source`` (tokenizer files) with new weights and config."""
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model*.safetensors*"))
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


# --------------------------------------------------------------------------- MXFP4


def encode_mxfp4(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., C]`` floats (C a multiple of 32) → ``[..., C/32, 16]`` uint8 + ``[..., C/32]`` uint8.

    Per group of 32: the shared scale is the smallest power of two 2^s with
    max|x| / 2^s ≤ 6 (FP4's largest value), stored as s + 127; each value is
    rounded to the nearest FP4 value; the even element goes to the low nibble.
    """
    groups = matrix.reshape(*matrix.shape[:-1], -1, 32).to(torch.float64)
    largest = groups.abs().amax(dim=-1)
    exponent = torch.ceil(torch.log2(torch.clamp(largest, min=2.0**-126) / 6.0))
    scaled = groups / torch.pow(2.0, exponent)[..., None]
    table = torch.tensor(FP4_VALUES[:8], dtype=torch.float64)  # the non-negative half
    magnitude = (scaled.abs()[..., None] - table).abs().argmin(dim=-1)
    nibbles = (magnitude + 8 * (scaled < 0)).to(torch.uint8)  # bit 3 is the sign
    packed = nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)
    return packed.to(torch.uint8), (exponent + 127).to(torch.uint8)


def test_mxfp4_encoder_round_trips_within_half_a_step():
    values = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    blocks, scales = encode_mxfp4(values)
    decoded = dequantize_mxfp4(blocks[None], scales[None])[0].T  # [3, 64]
    step = torch.pow(2.0, scales.to(torch.float64) - 127).repeat_interleave(32, dim=-1)
    # FP4 steps are at most 2 (between 4 and 6) in scaled units: error ≤ one step's half.
    assert torch.all((decoded - values).abs() <= step * 1.0 + 1e-12)
    assert torch.all(scales > 100) and (decoded != 0).any()


@pytest.fixture
def mxfp4_pair(tmp_path):
    """(quantised checkpoint, float twin) of a tiny GPT-OSS with hidden 64 and experts of 32."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = build_tiny_model(
            "gpt_oss", tmp_path / "base", overrides={"hidden_size": 64, "intermediate_size": 32}
        )
    state, config = _checkpoint(base)
    quantised, twin = {}, dict(state)
    experts = 0
    for name, value in state.items():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            # Stored transposed: gate_up_proj [E, H, 2I] is kept as [E, 2I, H/32, 16] blocks.
            blocks, scales = encode_mxfp4(value.transpose(1, 2).contiguous())
            quantised[name + "_blocks"], quantised[name + "_scales"] = blocks, scales
            twin[name] = dequantize_mxfp4(blocks, scales).to(value.dtype)
            assert twin[name].shape == value.shape
            experts += 1
        else:
            quantised[name] = value
    assert experts == 4  # two tensors in each of two layers
    quant_config = {
        **config,
        "quantization_config": {
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router"],
        },
    }
    return (
        _save(tmp_path / "mxfp4", base, quantised, quant_config),
        _save(tmp_path / "twin", base, twin, config),
    )


def test_streamed_mxfp4_checkpoint_equals_its_dequantised_twin(mxfp4_pair, text_file, tmp_path):
    quantised, twin = mxfp4_pair
    whole = run_collection(_config(twin, text_file, tmp_path / "whole.safetensors"))
    streamed = run_collection(
        _config(quantised, text_file, tmp_path / "streamed.safetensors", stream_layers=True)
    )
    assert_same_bundle(whole, streamed)


# --------------------------------------------------------------------------- FP8

#: Blocks that do not divide the tiny model's 32/16-wide weights, so partial blocks occur
#: (as DeepSeek-V3's kv_a_proj_with_mqa: 576 rows in 128-row blocks).
BLOCK = (12, 12)


def encode_fp8(weight: torch.Tensor, block: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[R, C]`` → float8_e4m3fn ``[R, C]`` + float32 ``weight_scale_inv`` ``[⌈R/bm⌉, ⌈C/bn⌉]``.

    Each block's scale maps its largest magnitude to 448 (e4m3's largest finite value).
    """
    rows, columns = weight.shape
    grid = (-(-rows // block[0]), -(-columns // block[1]))
    scale = torch.ones(grid, dtype=torch.float32)
    quantised = torch.empty(weight.shape, dtype=torch.float8_e4m3fn)
    for i in range(grid[0]):
        for j in range(grid[1]):
            rs = slice(i * block[0], (i + 1) * block[0])
            cs = slice(j * block[1], (j + 1) * block[1])
            largest = float(weight[rs, cs].abs().max())
            scale[i, j] = largest / 448.0 if largest > 0 else 1.0
            quantised[rs, cs] = (weight[rs, cs] / scale[i, j]).to(torch.float8_e4m3fn)
    return quantised, scale


def decode_fp8(quantised: torch.Tensor, scale: torch.Tensor, block: tuple[int, int]) -> np.ndarray:
    """Element by element: value × the scale of the block it falls in."""
    values = quantised.to(torch.float32).numpy()
    rows = np.arange(values.shape[0])[:, None] // block[0]
    columns = np.arange(values.shape[1])[None, :] // block[1]
    return values * scale.numpy()[rows, columns]


@pytest.fixture
def fp8_pair(tmp_path):
    """(FP8 checkpoint in DeepSeek-V3's layout, float twin) of a tiny DeepSeek-V3."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = build_tiny_model("deepseek_v3", tmp_path / "base")
    state, config = _checkpoint(base)
    quantised, twin = {}, dict(state)
    partial = 0
    for name, value in state.items():
        # As DeepSeek-V3 ships: every linear weight in the decoder layers but the router.
        if ".layers." in name and name.endswith("proj.weight") and value.dim() == 2:
            weight, scale = encode_fp8(value, BLOCK)
            quantised[name], quantised[name + "_scale_inv"] = weight, scale
            twin[name] = torch.from_numpy(decode_fp8(weight, scale, BLOCK))
            partial += value.shape[1] % BLOCK[1] != 0
        else:
            quantised[name] = value
    assert partial > 10  # expert and attention weights, partial blocks included
    quant_config = {
        **config,
        "quantization_config": {
            "quant_method": "fp8",
            "fmt": "e4m3",
            "activation_scheme": "dynamic",
            "weight_block_size": list(BLOCK),
        },
    }
    return (
        _save(tmp_path / "fp8", base, quantised, quant_config),
        _save(tmp_path / "twin", base, twin, config),
    )


def test_fp8_encoder_is_a_real_quantisation():
    weight = torch.randn(20, 30, generator=torch.Generator().manual_seed(2))
    quantised, scale = encode_fp8(weight, BLOCK)
    assert scale.shape == (2, 3)
    decoded = decode_fp8(quantised, scale, BLOCK)
    error = np.abs(decoded - weight.numpy())
    assert 0 < error.max() <= 0.07 * np.abs(weight.numpy()).max()  # e4m3: 3 mantissa bits


def test_streamed_fp8_checkpoint_equals_its_dequantised_twin(fp8_pair, text_file, tmp_path):
    quantised, twin = fp8_pair
    whole = run_collection(_config(twin, text_file, tmp_path / "whole.safetensors"))
    streamed = run_collection(
        _config(quantised, text_file, tmp_path / "streamed.safetensors", stream_layers=True)
    )
    assert_same_bundle(whole, streamed)


def test_an_unknown_quantisation_is_refused_in_one_line(tiny_model, text_file, tmp_path):
    base = tiny_model("mixtral")
    state, config = _checkpoint(base)
    config["quantization_config"] = {"quant_method": "awq", "bits": 4}
    model = _save(tmp_path / "awq", base, state, config)
    out = tmp_path / "q.safetensors"
    with pytest.raises(LensError, match="cannot dequantise awq checkpoints") as caught:
        run_collection(_config(model, text_file, out, stream_layers=True))
    assert "\n" not in str(caught.value)
