"""How well the bundles predicted the measured losses: ``core.predict`` on the written results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.engine import Profile
from core.formats.evaluation import read_evaluation
from core.predict import mask_groups, matching_profile, predict_vs_actual


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def spearman_rhos(report) -> dict:
    return {
        "retained_mass_vs_loss_increase": _rounded(report.rho_retained_mass, 3),
        "jaccard_vs_loss_increase": _rounded(report.rho_jaccard, 3),
        "masks": len(report.points),
    }


def _most_mass_half(report) -> list[str]:
    """Names of the ⌈n/2⌉ masks of ``report`` with the highest predicted retained mass."""
    ranked = sorted(report.points, key=lambda p: -(p.retained_mass or 0.0))
    return [p.mask for p in ranked[: (len(ranked) + 1) // 2]]


def prediction_summary(eval_paths: list[Path], bundle_paths: list[Path]) -> dict:
    """``core.predict`` on the written evaluations: per set, pooled, and the mass masks alone."""
    profiles = [Profile.load(p) for p in bundle_paths]
    evaluations = [read_evaluation(p) for p in eval_paths]
    sets = {}
    for evaluation in evaluations:
        report = predict_vs_actual([evaluation], profiles)
        mass = [r.name for r in evaluation.masks if r.mask.criterion == "mass"]
        by_name = {r.name: r for r in evaluation.masks}
        bundle = str(matching_profile(evaluation, profiles).bundle.path)
        own = next(
            p
            for p in report.points
            if p.criterion == "mass" and by_name[p.mask].mask.sources == [bundle]
        )
        ranked = sorted(report.points, key=lambda p: p.loss_increase)
        sets[evaluation.dataset] = {
            "file": str(evaluation.path),
            "data": evaluation.data,
            "evaluation_data": evaluation.extra.get("evaluation_data"),
            "samples": evaluation.samples,
            "tokens": evaluation.tokens,
            "baseline": {k: round(v, 4) for k, v in evaluation.baseline.items()},
            "own_mass_mask": own.mask,
            "own_mass_rank": 1 + ranked.index(own),
            "spearman": spearman_rhos(report),
            "spearman_mass_masks": spearman_rhos(
                predict_vs_actual([evaluation], profiles, only=mass)
            ),
            # the half of the masks that keep the most mass: does the lens also order the
            # close candidates, or only separate good masks from bad ones?
            "spearman_most_mass_half": spearman_rhos(
                predict_vs_actual([evaluation], profiles, only=_most_mass_half(report))
            ),
            "verdict": report.verdict,
            "masks": [
                {
                    "name": p.mask,
                    "criterion": p.criterion,
                    "retained_mass": _rounded(p.retained_mass),
                    "retained_mass_min": _rounded(p.retained_mass_min),
                    "jaccard": _rounded(p.jaccard),
                    "loss": round(p.loss, 4),
                    "loss_increase": round(p.loss_increase, 4),
                    "top1_accuracy": round(by_name[p.mask].top1_accuracy, 4),
                    "top1_agreement": round(p.top1_agreement, 4),
                }
                for p in report.points
            ],
        }
    pooled = predict_vs_actual(evaluations, profiles)
    return {"sets": sets, "pooled": {**spearman_rhos(pooled), "verdict": pooled.verdict}}


def _interval_overlap_share(intervals: list[tuple[float, float]]) -> float | None:
    """Share of mask pairs whose loss-increase intervals do not overlap (0 when fewer than 2).

    Conservative for a difference: both intervals come from the same samples (paired), so a
    pair whose intervals overlap may still differ; a pair whose intervals are apart does.
    """
    n = len(intervals)
    if n < 2:
        return None
    lo = np.array([i[0] for i in intervals])
    hi = np.array([i[1] for i in intervals])
    apart = (hi[:, None] < lo[None, :]) | (hi[None, :] < lo[:, None])
    return float(apart[np.triu_indices(n, 1)].mean())


def _noise(evaluation, indices: list[int]) -> dict:
    """Are the loss differences among these masks larger than the evaluation's own noise?"""
    results = [evaluation.masks[i] for i in indices]
    increases = np.array([r.loss_increase for r in results])
    intervals = [r.loss_increase_ci for r in results if r.loss_increase_ci is not None]
    widths = np.array([hi - lo for lo, hi in intervals])
    return {
        "masks": len(results),
        "loss_increase_range": [_rounded(float(increases.min())), _rounded(float(increases.max()))],
        "median_ci_width": _rounded(float(np.median(widths))) if widths.size else None,
        "pairs_apart": _rounded(_interval_overlap_share(intervals), 3),
    }


def study_summary(
    eval_paths: dict[int, list[Path]], bundle_paths: list[Path], data_groups: dict[str, str]
) -> dict:
    """Every predictor's ρ [interval] and p per evaluated set and budget, over all masks and
    within the groups of ``core.predict.mask_groups`` (with ``data_groups`` for the
    "same_data" group), and how the loss differences in each group compare with the noise."""
    profiles = [Profile.load(p) for p in bundle_paths]
    out: dict[str, dict] = {}
    for r, paths in eval_paths.items():
        for path in paths:
            evaluation = read_evaluation(path)
            report = predict_vs_actual([evaluation], profiles, data_groups=data_groups)
            tests = report.evaluations[0].to_json()
            groups = mask_groups(evaluation, evaluation.masks, data_groups)
            out[f"{evaluation.dataset} r={r}"] = {
                "file": str(path),
                "dataset": evaluation.dataset,
                "r": r,
                "masks": len(evaluation.masks),
                "predictors": tests["predictors"],
                "noise": {
                    "all": _noise(evaluation, list(range(len(evaluation.masks)))),
                    **{g: _noise(evaluation, idx) for g, idx in groups.items()},
                },
            }
    return out


def _fmt_test(t: dict) -> str:
    if t.get("spearman") is None:
        return "–"
    lo, hi = t["ci"]
    return f"{t['spearman']:+.2f} [{lo:+.2f}, {hi:+.2f}] p={t['p_value']:.3f}"


def print_study(study: dict) -> None:
    """The study as markdown tables (pasted into the READMEs): ρ over all masks and among the
    masks of the evaluated data's own language and domain."""
    for entry in study.values():
        noise = entry["noise"]
        same = noise.get("same_data")
        print(f"\n#### `{entry['dataset']}`, r = {entry['r']} ({entry['masks']} masks)\n")
        print("| predictor | all masks: ρ [95 % CI] p | same language and domain: ρ [95 % CI] p |")
        print("|---|---|---|")
        for pred in entry["predictors"]:
            within = pred["groups"].get("same_data", {})
            n = within.get("n")
            print(f"| {pred['name']} | {_fmt_test(pred)} | {_fmt_test(within)} (n={n}) |")
        for name, nz in (("all masks", noise["all"]), ("same language and domain", same)):
            if nz is None:
                continue
            lo, hi = nz["loss_increase_range"]
            print(
                f"\n{name}: loss increase {lo:+.3f} … {hi:+.3f}, median 95 % interval width "
                f"{nz['median_ci_width']:.3f}, pairs with disjoint intervals {nz['pairs_apart']:.0%}"
            )


def print_evaluation(section: dict) -> None:
    for name, s in section["sets"].items():
        base = s["baseline"]
        print(
            f"\nevaluation {name}: {s['samples']} samples, {s['tokens']} tokens, baseline loss "
            f"{base['loss']:.3f} (ppl {base['perplexity']:.1f}, top-1 {base['top1_accuracy']:.3f})"
        )
        print(f"  {'mask':26s} {'kept mass':>9s} {'Jaccard':>8s} {'Δ loss':>8s} {'agree@1':>8s}")
        for p in sorted(s["masks"], key=lambda p: p["loss_increase"]):
            mark = "  <- own data" if p["name"] == s["own_mass_mask"] else ""
            print(
                f"  {p['name']:26s} {p['retained_mass']:9.3f} {p['jaccard']:8.3f} "
                f"{p['loss_increase']:+8.3f} {p['top1_agreement']:8.3f}{mark}"
            )
        rho, rho_mass = s["spearman"], s["spearman_mass_masks"]
        print(
            f"  Spearman vs Δ loss: retained mass {rho['retained_mass_vs_loss_increase']}, "
            f"Jaccard {rho['jaccard_vs_loss_increase']} ({rho['masks']} masks); mass masks only "
            f"{rho_mass['retained_mass_vs_loss_increase']} / {rho_mass['jaccard_vs_loss_increase']}"
            f" ({rho_mass['masks']})"
        )
        close = s["spearman_most_mass_half"]
        print(
            f"  the {close['masks']} masks keeping the most mass alone: ρ(retained mass) "
            f"{close['retained_mass_vs_loss_increase']}, ρ(Jaccard) {close['jaccard_vs_loss_increase']}"
        )
    pooled = section["pooled"]
    print(
        f"\npooled over {len(section['sets'])} sets: ρ(retained mass) "
        f"{pooled['retained_mass_vs_loss_increase']}, ρ(Jaccard) "
        f"{pooled['jaccard_vs_loss_increase']} ({pooled['masks']} masks)"
    )
    for name, why in section["not_evaluated"].items():
        print(f"not evaluated: {name}: {why}")
    if section.get("study"):
        print_study(section["study"])
