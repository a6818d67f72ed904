"""GPT-OSS checkpoints quantised to MXFP4 load dequantised, so the hooks see the router."""

from __future__ import annotations

import warnings

import numpy as np

from core.collect.runner import CollectConfig, run_collection
from core.formats.bundle import load_bundle
from tests.tiny_models import build_tiny_mxfp4_gpt_oss


def test_mxfp4_checkpoint_collects_like_its_dequantised_twin(text_file, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mxfp4, float_twin = build_tiny_mxfp4_gpt_oss(tmp_path / "models")

    def collect(model, name):
        config = CollectConfig.from_settings(
            model=str(model), data=str(text_file), out=tmp_path / name, dtype="float32"
        )
        return load_bundle(run_collection(config))

    quantised, reference = collect(mxfp4, "mx.safetensors"), collect(float_twin, "f.safetensors")
    assert quantised.metadata["norm_method"] == "recording"
    assert sorted(quantised.tensors) == sorted(reference.tensors)
    # FP4 values times powers of two are exact in float32: the same weights, the same numbers.
    for name in reference.tensors:
        np.testing.assert_array_equal(quantised.tensors[name], reference.tensors[name], name)


def test_mxfp4_is_requested_dequantised(text_file, tmp_path, monkeypatch):
    """On CPU transformers dequantises MXFP4 anyway; on GPUs with the MXFP4 kernels it
    would swap in an MLP that bypasses the router module, so we must ask explicitly."""
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mxfp4, _ = build_tiny_mxfp4_gpt_oss(tmp_path / "models")
    seen = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("quantization_config"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    run_collection(
        CollectConfig.from_settings(
            model=str(mxfp4), data=str(text_file), out=tmp_path / "b.safetensors"
        )
    )
    assert seen and all(getattr(q, "dequantize", False) for q in seen)
