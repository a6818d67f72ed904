"""``lens evaluate --stream-layers``: every mask in one pass over the layers, same figures."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import LensError
from core.evaluate.runner import EvaluateConfig, run_evaluation
from core.formats.mask import Mask
from tests.core.evaluate.conftest import TEXTS

E = 8  # tests/tiny_models.py sizes


def _masks(folder, seed: int) -> list[Mask]:
    """Three random masks keeping 3–6 of 8 experts per layer (2 layers)."""
    rng = np.random.default_rng(seed)
    masks = []
    for k, kept in enumerate((3, 4, 6)):
        layers = [sorted(rng.choice(E, size=kept, replace=False).tolist()) for _ in range(2)]
        masks.append(
            Mask(
                model=str(folder), num_experts=E, criterion=f"random{k}", sources=[], layers=layers
            )
        )
    return masks


def _evaluate(folder, data, masks, **kwargs):
    config = EvaluateConfig.from_settings(
        model=str(folder), data=str(data), masks=masks, device="cpu", dtype="float32",
        batch_size=3, **kwargs,
    )  # fmt: skip
    return run_evaluation(config)


@pytest.fixture
def heldout(tmp_path):
    path = tmp_path / "heldout.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("family", ["gpt_oss", "mixtral", "qwen3_moe"])
def test_streamed_masked_losses_equal_whole_model(family, tiny_model, heldout):
    folder = tiny_model(family)
    masks = _masks(folder, seed=3)
    whole = _evaluate(folder, heldout, masks)
    streamed = _evaluate(folder, heldout, masks, stream_layers=True)
    assert streamed.tokens == whole.tokens and streamed.samples == whole.samples
    assert streamed.baseline["loss"] == pytest.approx(whole.baseline["loss"], rel=1e-6, abs=0)
    assert streamed.baseline["top1_accuracy"] == whole.baseline["top1_accuracy"]
    assert len(streamed.masks) == 3
    for a, b in zip(whole.masks, streamed.masks):
        assert b.loss == pytest.approx(a.loss, rel=1e-6, abs=0), a.name
        assert b.top1_accuracy == a.top1_accuracy and b.top1_agreement == a.top1_agreement
        assert a.loss_increase != 0 and a.top1_agreement < 1  # the masks change the model
    assert streamed.extra["stream_layers"] is True


def test_streamed_evaluation_reports_layers(tiny_model, heldout):
    folder = tiny_model("mixtral")
    updates = []
    config = EvaluateConfig.from_settings(
        model=str(folder), data=str(heldout), masks=_masks(folder, 1), device="cpu",
        dtype="float32", stream_layers=True,
    )  # fmt: skip
    run_evaluation(config, progress=updates.append)
    messages = {u.message for u in updates}
    assert {"layer 1 of 2", "layer 2 of 2"} <= messages


def test_streamed_evaluation_refuses_lm_eval(tiny_model, heldout):
    with pytest.raises(LensError, match="drop --stream-layers"):
        _evaluate(tiny_model("mixtral"), heldout, [], stream_layers=True, lm_eval_tasks=["x"])
