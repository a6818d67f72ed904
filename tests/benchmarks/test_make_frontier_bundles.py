"""``benchmarks/make_frontier_bundles.py`` at small dimensions.

The bundles stand in for real collections in app benchmarks and snapshots, so
they must be valid bundles, obey the identities real collections obey (checked
here by hand with numpy, not with the engine), and differ between datasets the
way calibration sets do: alike within a domain, apart across domains, and far
above the noise of splitting one dataset in half.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from core.formats.bundle import OPTIONAL_TENSORS, REQUIRED_TENSORS, find_bundles, load_bundle

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "make_frontier_bundles.py"
SMALL = ["--bundles", "4", "--layers", "6", "--experts", "24", "--top-k", "4", "--samples", "400"]


@pytest.fixture(scope="module")
def maker():
    spec = importlib.util.spec_from_file_location("make_frontier_bundles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def folder(maker, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("frontier")
    assert maker.main(["--out", str(out), *SMALL]) == 0
    return out


def _js_bits(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-layer Jensen-Shannon divergence in bits, written out by hand."""
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        safe = np.where(a > 0, a, 1.0)
        return np.where(a > 0, a * np.log2(safe / m), 0.0).sum(axis=-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


def _signature(prob_sum: np.ndarray, token_count: np.ndarray) -> np.ndarray:
    return prob_sum.astype(np.float64).sum(axis=0) / token_count.sum()


def test_writes_valid_bundles_with_every_tensor(folder: Path) -> None:
    paths = find_bundles([folder])
    assert [p.stem for p in paths] == sorted(["c4_en", "fineweb_en", "wiki_en", "news_de"])
    for path in paths:
        bundle = load_bundle(path)
        assert set(bundle.tensors) == set(REQUIRED_TENSORS) | set(OPTIONAL_TENSORS)
        assert bundle.tensors["prob_sum"].shape == (400, 6, 24)
        meta = bundle.metadata
        assert (meta["num_layers"], meta["num_experts"], meta["top_k"]) == ("6", "24", "4")
        assert meta["dataset"] == path.stem and meta["synthetic"] == "true"


def test_statistics_obey_the_identities_of_real_collections(folder: Path) -> None:
    t = {k: np.asarray(v) for k, v in load_bundle(folder / "c4_en.safetensors").tensors.items()}
    tokens = t["token_count"]
    assert tokens.min() >= 8 and tokens.max() <= 4096
    np.testing.assert_array_equal(t["example_ids"], np.arange(400))
    per_token = t["prob_sum"].sum(axis=-1) / tokens[:, None]
    np.testing.assert_allclose(per_token, 1.0, rtol=1e-5)  # p is a distribution per token
    count = t["topk_count"]
    expected = np.broadcast_to(4 * tokens[:, None], (400, 6))
    np.testing.assert_array_equal(count.sum(axis=-1), expected)  # k picks a token
    assert count.min() >= 0 and (count <= tokens[:, None, None]).all()  # once a token at most
    weight = t["weight_sum"]
    np.testing.assert_allclose(weight.sum(axis=-1) / tokens[:, None], 1.0, rtol=1e-4)
    assert (weight <= count + 1e-3).all() and (weight[count == 0] == 0).all()  # w ≤ 1
    norm, square = t["act_norm_sum"], t["act_sqnorm_sum"]
    used = count > 0
    # Cauchy-Schwarz over an expert's routed tokens: Σ‖y‖² ≥ (Σ‖y‖)² / n.
    assert (square[used] * count[used] >= norm[used] ** 2 * (1 - 1e-5)).all()
    assert (t["reap_sum"] <= norm * (1 + 1e-5)).all()  # w‖y‖ ≤ ‖y‖
    assert (t["energy_sum"] <= square * (1 + 1e-5)).all()  # w²‖y‖² ≤ ‖y‖²
    assert (t["energy_sum"][used] > 0).all()


def test_datasets_differ_as_calibration_sets_do(folder: Path) -> None:
    sig = {}
    halves = {}
    for path in find_bundles([folder]):
        t = load_bundle(path).tensors
        sig[path.stem] = _signature(t["prob_sum"], t["token_count"])
        halves[path.stem] = (
            _signature(t["prob_sum"][::2], t["token_count"][::2]),
            _signature(t["prob_sum"][1::2], t["token_count"][1::2]),
        )
    floor = max(_js_bits(*pair).mean() for pair in halves.values())
    same_domain = _js_bits(sig["c4_en"], sig["fineweb_en"]).mean()
    other_domain = _js_bits(sig["c4_en"], sig["news_de"]).mean()
    assert floor * 3 < same_domain < other_domain / 2
    # Deep layers specialise: the last layer separates domains more than the first.
    per_layer = _js_bits(sig["c4_en"], sig["news_de"])
    assert per_layer[-1] > 3 * per_layer[0]


def test_same_seed_same_bytes_and_tensor_choice(maker, folder: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    maker.main(["--out", str(again), *SMALL])
    for path in find_bundles([folder]):
        assert (again / path.name).read_bytes() == path.read_bytes()
    slim = tmp_path / "slim"
    maker.main(["--out", str(slim), *SMALL[:2], "--samples", "50", "--tensors", "energy_sum"])
    bundle = load_bundle(slim / "c4_en.safetensors")
    assert set(bundle.tensors) == set(REQUIRED_TENSORS) | {"energy_sum"}
    assert bundle.tensors["prob_sum"].shape == (50, 61, 384)  # the frontier defaults


def test_rejects_unknown_tensor(maker, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        maker.main(["--out", str(tmp_path), "--tensors", "energy"])
