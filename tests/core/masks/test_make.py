"""Mask criteria, budgets and the mask file, against naive per-expert loops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import LensError
from core.formats.bundle import load_bundle
from core.formats.mask import MASK_FORMAT, read_mask, write_mask
from core.masks.criteria import CRITERIA, AimerScores
from core.masks.make import make_mask
from tests.conftest import make_bundle, routed_counts
from tests.core import reference as ref

ROOT = Path(__file__).resolve().parents[3]
L, E, K = 3, 8, 2
STATS = (
    "topk_count",
    "weight_sum",
    "act_norm_sum",
    "act_sqnorm_sum",
    "reap_sum",
    "reap_literal_count",
    "reap_literal_sum",
)


def full_stats(n: int, seed: int) -> dict[str, np.ndarray]:
    """Every optional statistic (and the token counts they fit), with experts 6 and 7 of
    layer 1 never routed."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 20, size=n)
    counts = routed_counts(rng, tokens, L, E, K, never=(1, [6, 7]))
    literal = rng.integers(0, 20, size=(n, L, E)).astype(np.int32)
    literal[:, 2, 0] = 0
    extra = {"topk_count": counts, "token_count": tokens, "reap_literal_count": literal}
    for name in STATS[1:]:
        if name not in extra:
            extra[name] = (rng.random((n, L, E)) * 10).astype(np.float32)
    extra["act_norm_sum"][:, 1, 6:] = 50.0  # large, but never routed: man scores it 0
    return extra


@pytest.fixture
def bundles(tmp_path):
    a = make_bundle(
        tmp_path / "a.safetensors",
        n=9,
        layers=L,
        experts=E,
        top_k=K,
        seed=1,
        extra=full_stats(9, 11),
    )
    b = make_bundle(
        tmp_path / "b.safetensors",
        n=6,
        layers=L,
        experts=E,
        top_k=K,
        seed=2,
        extra=full_stats(6, 12),
        concentration=0.2,
    )
    return [load_bundle(a), load_bundle(b)]


# --------------------------------------------------------------------------- naive reference


def naive_total(bundles, name, layer, expert) -> float:
    total = 0.0
    for bundle in bundles:
        array = bundle.tensors[name]
        for i in range(bundle.num_samples):
            total += float(array[i, layer, expert])
    return total


def naive_score(criterion, bundles, layer, expert) -> float:
    if criterion == "mass":
        tokens = sum(int(t) for b in bundles for t in b.token_count)
        return naive_total(bundles, "prob_sum", layer, expert) / tokens
    direct = {
        "frequency": "topk_count",
        "gate": "weight_sum",
        "energy": "energy_sum",
        "ean": "act_norm_sum",
        "wean": "reap_sum",
    }
    if criterion in direct:
        return naive_total(bundles, direct[criterion], layer, expert)
    if criterion == "reap-literal":
        routed = naive_total(bundles, "reap_literal_count", layer, expert)
        return (
            0.0 if routed == 0 else naive_total(bundles, "reap_literal_sum", layer, expert) / routed
        )
    numerator = {"man": "act_norm_sum", "msan": "act_sqnorm_sum", "reap": "reap_sum"}[criterion]
    routed = naive_total(bundles, "topk_count", layer, expert)
    return 0.0 if routed == 0 else naive_total(bundles, numerator, layer, expert) / routed


def naive_top(scores: list[float], r: int) -> list[int]:
    """Repeatedly take the first maximum (ties to the lower index), ascending."""
    return sorted(ref.top_r(scores, r))


def naive_global(scores: list[list[float]], total: int, floor: int) -> list[list[int]]:
    kept = [set(naive_top(row, floor)) for row in scores]
    for _ in range(total - floor * len(scores)):
        best = None
        for layer, row in enumerate(scores):
            for e, value in enumerate(row):
                if e in kept[layer]:
                    continue
                if best is None or value > scores[best[0]][best[1]]:
                    best = (layer, e)
        kept[best[0]].add(best[1])
    return [sorted(k) for k in kept]


def one_sample(path: Path, prob: np.ndarray, top_k: int, tokens: int = 1):
    """A loaded one-sample bundle with the given prob_sum [1, L, E] and no energy."""
    _, layers, experts = prob.shape
    return load_bundle(
        make_bundle(
            path,
            n=1,
            layers=layers,
            experts=experts,
            top_k=top_k,
            token_count=np.array([tokens]),
            prob_sum=prob,
            energy=False,
        )
    )


SCORED = (
    "mass",
    "frequency",
    "gate",
    "energy",
    "ean",
    "man",
    "msan",
    "reap",
    "wean",
    "reap-literal",
)


# --------------------------------------------------------------------------- criteria


@pytest.mark.parametrize("criterion", SCORED)
@pytest.mark.parametrize("r", [2, 5])
def test_each_criterion_matches_a_per_expert_loop(bundles, criterion, r):
    mask = make_mask(criterion, bundles, r=r)
    for layer in range(L):
        scores = [naive_score(criterion, bundles, layer, e) for e in range(E)]
        assert mask.layers[layer] == naive_top(scores, r), (criterion, layer)
    assert mask.criterion == criterion and mask.top_k == K
    assert mask.sources == [str(b.path) for b in bundles]


def test_per_routed_token_criteria_score_never_routed_experts_zero(bundles):
    # Experts 6 and 7 of layer 1 have a huge act_norm_sum but were never routed.
    man = make_mask("man", bundles, r=6).layers[1]
    ean = make_mask("ean", bundles, r=2).layers[1]
    assert 6 not in man and 7 not in man
    assert ean == [6, 7]


@pytest.mark.parametrize("criterion", ["mass", "reap", "frequency"])
def test_global_budget_matches_a_naive_greedy(bundles, criterion):
    for total in (L * K, 10, 17, L * E):
        mask = make_mask(criterion, bundles, budget=total)
        scores = [[naive_score(criterion, bundles, l, e) for e in range(E)] for l in range(L)]
        assert mask.layers == naive_global(scores, total, K), (criterion, total)
        assert mask.total_kept == total and min(mask.kept_per_layer) >= K
        assert mask.budget == {"kind": "global", "total": total, "min_per_layer": K}


def test_global_budget_never_goes_below_top_k_in_a_hand_worked_case(tmp_path):
    # Layer 1's mass is all on expert 3; a pure global ranking would keep only that one there.
    prob = np.zeros((1, 2, 4), dtype=np.float32)
    prob[0, 0] = [0.4, 0.3, 0.2, 0.1]
    prob[0, 1] = [0.0, 0.0, 0.0, 1.0]  # a global ranking would give layer 1 one expert
    mask = make_mask("mass", [one_sample(tmp_path / "h.safetensors", prob, 2)], budget=5)
    assert mask.layers == [[0, 1, 2], [0, 3]]  # layer 1: expert 3, then the tie goes to 0


def test_ties_go_to_the_lower_expert(tmp_path):
    prob = np.full((1, 1, 6), 0.1, dtype=np.float32)
    prob[0, 0, 4] = 0.5
    assert make_mask("mass", [one_sample(tmp_path / "t.safetensors", prob, 1)], r=3).layers == [
        [0, 1, 4]
    ]


def turn_order(bundles, strength):
    """Bundles strongest first (``strength(bundle)``), ties by dataset name then path."""
    return sorted(bundles, key=lambda b: (-strength(b), b.dataset, str(b.path)))


def naive_coverage_order(bundles, layer) -> list[int]:
    """The round-robin order itself (every expert, in the order coverage takes them)."""
    kept: list[int] = []
    strongest_first = turn_order(
        bundles, lambda b: max(naive_score("mass", [b], layer, e) for e in range(E))
    )
    while len(kept) < E:
        for bundle in strongest_first:
            scores = [naive_score("mass", [bundle], layer, e) for e in range(E)]
            left = [e for e in range(E) if e not in kept]
            if not left:
                break
            best = left[0]
            for e in left:
                if scores[e] > scores[best]:
                    best = e
            kept.append(best)
    return kept


def naive_coverage(bundles, layer, r) -> list[int]:
    return sorted(naive_coverage_order(bundles, layer)[:r])


@pytest.mark.parametrize("r", [1, 3, 4, 8])
def test_coverage_is_a_round_robin_over_each_bundles_ranking(bundles, r):
    mask = make_mask("coverage", bundles, r=r, min_per_layer=None) if r >= K else None
    if mask is None:
        with pytest.raises(LensError, match="below the model's top-k"):
            make_mask("coverage", bundles, r=r)
        return
    for layer in range(L):
        assert mask.layers[layer] == naive_coverage(bundles, layer, r)


def test_coverage_keeps_each_datasets_favourite(tmp_path):
    # A likes experts 0,1; B likes 6,7: coverage at r=2 keeps 0 and 6, pooled mass keeps 0 and 1.
    def peaked(favourites, weight, tokens=1):
        rest = (tokens - sum(weight)) / (8 - len(favourites))  # rows sum to the tokens
        prob = np.full((1, 1, 8), rest, dtype=np.float32)
        for e, w in zip(favourites, weight):
            prob[0, 0, e] = w
        return prob

    pair = [
        one_sample(tmp_path / "a.safetensors", peaked([0, 1], [50, 40], 100), 1, tokens=100),
        one_sample(tmp_path / "b.safetensors", peaked([6, 7], [0.5, 0.4]), 1),
    ]
    assert make_mask("coverage", pair, r=2).layers == [[0, 6]]
    assert make_mask("mass", pair, r=2).layers == [[0, 1]]


def test_global_coverage_round_robins_over_whole_model_rankings(bundles):
    total = 11
    mask = make_mask("coverage", bundles, budget=total)
    # naive: floors from per-layer coverage, then round-robin over each bundle's global ranking
    kept = [set(naive_coverage(bundles, l, K)) for l in range(L)]
    rankings = []
    pairs = [(l, e) for l in range(L) for e in range(E)]
    for bundle in turn_order(bundles, lambda b: max(naive_score("mass", [b], *p) for p in pairs)):
        scores = {p: naive_score("mass", [bundle], *p) for p in pairs}
        rankings.append(sorted(pairs, key=lambda p: (-scores[p], p)))
    order, taken = [], set()
    while len(taken) < L * E:
        for ranking in rankings:
            pick = next((p for p in ranking if p not in taken), None)
            if pick is not None:
                taken.add(pick)
                order.append(pick)
    left = total - L * K
    for l, e in order:
        if left == 0:
            break
        if e not in kept[l]:
            kept[l].add(e)
            left -= 1
    assert mask.layers == [sorted(k) for k in kept]


def test_coverage_does_not_depend_on_the_order_of_the_bundles(tmp_path):
    paths = [
        make_bundle(
            tmp_path / f"{name}.safetensors",
            n=5,
            layers=L,
            experts=E,
            seed=s,
            dataset=name,
            concentration=c,
        )
        for name, s, c in (("c4", 3, 0.3), ("zh", 4, 0.6), ("code", 5, 0.2))
    ]
    loaded = [load_bundle(p) for p in paths]
    import itertools

    masks = {
        perm: make_mask("coverage", [loaded[i] for i in perm], r=r)
        for perm in itertools.permutations(range(3))
        for r in (3,)
    }
    first = next(iter(masks.values()))
    for perm, mask in masks.items():
        assert mask.layers == first.layers, perm
        assert mask.sources == [str(paths[i]) for i in perm]  # the user's order is kept
    budgets = {
        perm: make_mask("coverage", [loaded[i] for i in perm], budget=13).layers
        for perm in itertools.permutations(range(3))
    }
    assert len({json.dumps(v) for v in budgets.values()}) == 1


def test_coverage_odd_r_gives_the_extra_pick_to_the_most_concentrated_dataset(tmp_path):
    # A is flat-ish (favourite 0.3), B peaked (favourite 0.6): B picks first whatever the order.
    def one(name, favourites):
        prob = np.full((1, 1, 8), 0.0, dtype=np.float32)
        for e, w in favourites.items():
            prob[0, 0, e] = w
        return load_bundle(
            make_bundle(
                tmp_path / f"{name}.safetensors",
                n=1,
                layers=1,
                experts=8,
                top_k=1,
                token_count=np.array([1]),
                prob_sum=prob,
                energy=False,
                dataset=name,
            )
        )

    a = one("a", {0: 0.3, 1: 0.25, 2: 0.25, 3: 0.2})
    b = one("b", {7: 0.6, 6: 0.3, 5: 0.1})
    for pair in ([a, b], [b, a]):
        assert make_mask("coverage", pair, r=3).layers == [[0, 6, 7]]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "criterion,missing",
    [
        ("frequency", "topk_count"),
        ("gate", "weight_sum"),
        ("ean", "act_norm_sum"),
        ("man", "act_norm_sum"),
        ("msan", "act_sqnorm_sum"),
        ("reap", "reap_sum"),
        ("wean", "reap_sum"),
        ("reap-literal", "reap_literal_sum"),
        ("energy", "energy_sum"),
    ],
)
def test_missing_statistic_names_the_bundle_the_statistic_and_the_fix(tmp_path, criterion, missing):
    path = make_bundle(tmp_path / "bare.safetensors", n=3, layers=L, experts=E, energy=False)
    with pytest.raises(LensError) as err:
        make_mask(criterion, [load_bundle(path)], r=2)
    message = str(err.value)
    assert str(path) in message and f"criterion '{criterion}'" in message
    assert f"'{missing}'" in message and "lens collect" in message and "\n" not in message


def test_budget_arguments_are_checked(bundles):
    with pytest.raises(LensError, match="exactly one"):
        make_mask("mass", bundles, r=2, budget=10)
    with pytest.raises(LensError, match="exactly one"):
        make_mask("mass", bundles)
    with pytest.raises(LensError, match="below the model's top-k of 2"):
        make_mask("mass", bundles, r=1)
    with pytest.raises(LensError, match=r"budget=5 is outside 6\.\.24"):
        make_mask("mass", bundles, budget=5)
    with pytest.raises(LensError, match="outside 1..8"):
        make_mask("mass", bundles, r=9)
    with pytest.raises(LensError, match="unknown criterion"):
        make_mask("magic", bundles, r=2)


def test_bundles_of_different_models_are_refused(tmp_path, bundles):
    other = make_bundle(tmp_path / "o.safetensors", layers=L, experts=E, model="other")
    with pytest.raises(LensError, match="(one|same) model"):
        make_mask("mass", [*bundles, load_bundle(other)], r=2)
    wide = make_bundle(tmp_path / "w.safetensors", layers=L, experts=16)
    with pytest.raises(LensError, match="same model"):
        make_mask("mass", [bundles[0], load_bundle(wide)], r=2)


# --------------------------------------------------------------------------- the mask file


def test_mask_file_round_trip_has_exactly_the_spec_keys(bundles, tmp_path):
    mask = make_mask("reap", bundles, r=3)
    path = write_mask(tmp_path / "m.json", mask)
    doc = json.loads(path.read_text())
    spec_keys = {"format", "model", "num_experts", "criterion", "sources", "layers"}
    assert spec_keys <= set(doc)
    assert doc["format"] == MASK_FORMAT and doc["num_experts"] == E
    assert doc["model"] == "tiny-moe" and doc["criterion"] == "reap"
    assert doc["layers"] == mask.layers and all(ids == sorted(ids) for ids in doc["layers"])
    back = read_mask(path)
    assert back.layers == mask.layers and back.top_k == K and back.budget == mask.budget
    assert back.sources == mask.sources and back.path == path


def test_every_criterion_is_documented():
    assert set(CRITERIA) == {
        "mass",
        "frequency",
        "gate",
        "energy",
        "ean",
        "man",
        "msan",
        "reap",
        "wean",
        "reap-literal",
        "aimer",
        "naee",
        "coverage",
    }


def test_masks_and_prune_modules_do_not_import_torch():
    code = (
        "import sys, core.masks, core.masks.compare, core.prune.surgery, core.prune.aimer, "
        "lens_tui.commands.masks, lens_tui.commands.prune;"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("criterion", ["mass", "coverage", "reap"])
def test_groups_keep_r_over_g_best_in_each_contiguous_group(bundles, criterion):
    mask = make_mask(criterion, bundles, r=4, groups=2)
    for layer in range(L):
        if criterion == "coverage":
            # walk the full round-robin order, taking an expert while its group has room
            order, taken = [], {0: 0, 1: 0}
            full = naive_coverage_order(bundles, layer)
            for e in full:
                if taken[e // 4] < 2:
                    taken[e // 4] += 1
                    order.append(e)
            assert mask.layers[layer] == sorted(order)
            continue
        scores = [naive_score(criterion, bundles, layer, e) for e in range(E)]
        expected = sorted(
            naive_top([scores[e] if e < 4 else -np.inf for e in range(E)], 2)
            + naive_top([scores[e] if e >= 4 else -np.inf for e in range(E)], 2)
        )
        assert mask.layers[layer] == expected
    for ids in mask.layers:
        assert sum(e < 4 for e in ids) == 2 and sum(e >= 4 for e in ids) == 2
    assert mask.budget == {"kind": "per_layer", "r": 4, "groups": 2}


def test_groups_must_divide_r_and_e(bundles):
    with pytest.raises(LensError, match="groups=3 must divide"):
        make_mask("mass", bundles, r=4, groups=3)
    with pytest.raises(LensError, match="not a budget"):
        make_mask("mass", bundles, budget=12, groups=2)


# --------------------------------------------------------------------------- aimer, received


def test_aimer_masks_keep_the_best_of_the_scores_they_receive():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(L, E))
    given = AimerScores(model="ckpt", scores=scores, top_k=2)
    per_layer = make_mask("aimer", r=3, aimer=given)
    for layer in range(L):
        assert per_layer.layers[layer] == naive_top(scores[layer].tolist(), 3)
    assert (per_layer.model, per_layer.top_k, per_layer.sources) == ("ckpt", 2, [])
    total = make_mask("aimer", budget=2 * L + 3, aimer=given)
    assert total.layers == naive_global(scores.tolist(), 2 * L + 3, 2)


def test_aimer_without_scores_or_with_bundles_is_refused(bundles):
    with pytest.raises(LensError, match="criterion 'aimer' reads the checkpoint's weights"):
        make_mask("aimer", r=3)
    given = AimerScores(model="ckpt", scores=np.zeros((L, E)), top_k=None)
    with pytest.raises(LensError, match="calibration-free and reads no bundles"):
        make_mask("aimer", bundles, r=3, aimer=given)


def test_masks_and_formats_stay_below_prune_evaluate_collect_and_torch():
    banned = ("core.prune", "core.evaluate", "core.collect", "torch", "transformers")
    code = (
        "import sys, core.masks.make, core.masks.compare, core.masks.criteria, "
        "core.masks.selection, core.formats.bundle, core.formats.mask, core.formats.evaluation, "
        "core.formats.legacy_pt, core.io.atomic, core.io.safetensors, core.engine, core.predict;"
        f"print(','.join(m for m in sys.modules if m.split('.')[0] in {{'torch', 'transformers'}} "
        f"or any(m == b or m.startswith(b + '.') for b in {banned!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------- hash-routed layers


def hash_routed_bundle(path: Path, layers: list[int], seed: int = 5):
    """A loaded 6-sample bundle (L × E, Dirichlet routing) whose metadata lists ``layers`` as
    hash-routed, as lens collect writes it for DeepSeek-V4."""
    from core.formats.bundle import bundle_metadata, write_bundle

    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 30, size=6)
    prob = rng.dirichlet(np.full(E, 0.4), size=(6, L)) * tokens[:, None, None]
    meta = bundle_metadata(
        model="tiny-v4",
        dataset=path.stem,
        num_layers=L,
        num_experts=E,
        top_k=K,
        hash_routed_layers=json.dumps(layers),
    )
    tensors = {"prob_sum": prob, "token_count": tokens, "example_ids": np.arange(6)}
    return load_bundle(write_bundle(path, tensors, meta))


def test_hash_routed_layers_are_kept_whole_with_either_budget(tmp_path):
    bundle = hash_routed_bundle(tmp_path / "v4.safetensors", [1])
    scores = [[naive_score("mass", [bundle], l, e) for e in range(E)] for l in range(L)]
    mask = make_mask("mass", [bundle], r=3)
    assert mask.layers == [naive_top(scores[0], 3), list(range(E)), naive_top(scores[2], 3)]
    assert mask.to_json()["hash_routed_layers"] == [1]
    total = E + 2 * K + 3  # the hash-routed layer's E count towards the budget
    mask = make_mask("mass", [bundle], budget=total)
    learned = naive_global([scores[0], scores[2]], total - E, K)
    assert mask.layers == [learned[0], list(range(E)), learned[1]]
    assert mask.total_kept == total
    with pytest.raises(LensError, match=r"budget=11 is outside 12\.\.24: hash-routed layers \[1\]"):
        make_mask("mass", [bundle], budget=E + 2 * K - 1)


def test_a_bundle_without_hash_routed_layers_writes_no_such_key(bundles):
    assert "hash_routed_layers" not in make_mask("mass", bundles, r=3).to_json()
