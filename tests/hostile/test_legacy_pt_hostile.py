"""The paper's ``.pt`` bundles with unusual tensors: converted where lossless, else one line.

bfloat16 and float16 widen to float32 exactly (every such value is a float32
value); counts stored as whole floats become integers. Sparse, complex,
boolean, integer-valued sums, nested containers and impossible values are
refused through ``lens stats`` with one line naming the file and the entry.
"""

from __future__ import annotations

import json

import pytest

from tests.hostile.conftest import assert_clean_refusal, invoke, snapshot

torch = pytest.importorskip("torch")

N, LAYERS, EXPERTS = 4, 2, 4
TOKENS = [3, 4, 5, 6]


def _prob() -> torch.Tensor:
    """Per-sample routing sums whose rows sum to their tokens (exact in bfloat16: quarters)."""
    return torch.tensor(TOKENS, dtype=torch.float32)[:, None, None] * torch.full(
        (N, LAYERS, EXPERTS), 1 / EXPERTS
    )


def _save(path, **entries) -> None:
    doc = {"prob_sum": _prob(), "token_count": torch.tensor(TOKENS)}
    doc.update(entries)
    torch.save({k: v for k, v in doc.items() if v is not None}, path)


@pytest.mark.parametrize(
    "entries",
    [
        {"prob_sum": _prob().to(torch.bfloat16)},
        {"prob_sum": _prob().to(torch.float16)},
        {"prob_sum": _prob().to(torch.float64)},
        {"token_count": torch.tensor(TOKENS, dtype=torch.float32)},
        {"token_count": torch.tensor(TOKENS, dtype=torch.int32)},
        {"energy_sum": _prob().to(torch.bfloat16)},
        {"something_else": torch.zeros(3, dtype=torch.complex64)},  # not ours: ignored
        {"note": "collected by the paper's script"},
    ],
    ids=[
        "bf16",
        "fp16",
        "fp64",
        "tokens-float",
        "tokens-int32",
        "energy-bf16",
        "unknown-complex",
        "string-note",
    ],  # fmt: skip
)
def test_lossless_conversions_load_with_the_same_values(tmp_path, entries):
    path = tmp_path / "derived_stats.pt"
    _save(path, **entries)
    result = invoke(["stats", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["bundle"]["tokens"] == sum(TOKENS)
    # Uniform routing: every expert holds 1/E of the mass in every layer.
    for row in doc["layers"]:
        assert row["n_eff"] == pytest.approx(EXPERTS, rel=1e-6)


BAD = [
    ("sparse", {"prob_sum": _prob().to_sparse()}, "sparse"),
    ("complex", {"prob_sum": _prob().to(torch.complex64)}, "complex"),
    ("bool-tokens", {"token_count": torch.ones(N, dtype=torch.bool)}, "bool"),
    ("int-prob", {"prob_sum": (_prob() * 4).to(torch.int64)}, "floating-point"),
    ("fractional-tokens", {"token_count": torch.tensor([3.5, 4, 5, 6])}, "non-integer"),
    ("nan-tokens", {"token_count": torch.tensor([float("nan"), 4, 5, 6])}, "non-integer"),
    ("nested-dict", {"prob_sum": {"layer0": _prob()}}, "dict"),
    ("list-tokens", {"token_count": TOKENS}, "list"),
    ("string-prob", {"prob_sum": "none"}, "str"),
    (
        "nan-prob",
        {"prob_sum": _prob().index_put_((torch.tensor([1]),), torch.tensor(float("nan")))},
        "NaN",
    ),  # fmt: skip
    ("negative-prob", {"prob_sum": _prob() - 1}, "negative"),
    ("rows-off", {"prob_sum": _prob() * 2}, "row [0, 0]"),
    (
        "bf16-huge",
        {"prob_sum": torch.full((N, LAYERS, EXPERTS), 3e38).to(torch.bfloat16)},
        "row [0, 0]",
    ),  # fmt: skip
    (
        "fp64-overflow",
        {"prob_sum": torch.full((N, LAYERS, EXPERTS), 1e300, dtype=torch.float64)},
        "infinite",
    ),  # fmt: skip
    ("2d-prob", {"prob_sum": _prob()[0]}, "[N, L, E]"),
    ("no-tokens", {"token_count": None}, "token_count"),
    ("not-a-dict", None, "dict"),
]


@pytest.mark.parametrize("name,entries,needle", BAD, ids=[b[0] for b in BAD])
def test_unusable_pt_entries_are_refused_in_one_line(tmp_path, name, entries, needle):
    path = tmp_path / "derived_stats.pt"
    if entries is None:
        torch.save([_prob()], path)
    else:
        _save(path, **entries)
    before = snapshot(tmp_path)
    assert_clean_refusal(invoke(["stats", str(path)]), "derived_stats.pt", needle)
    assert snapshot(tmp_path) == before
