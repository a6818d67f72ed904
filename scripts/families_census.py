"""Which MoE causal-LM types of the installed transformers the lens can collect, evaluate, prune.

    python -m scripts.families_census                 # one line per type, then the counts
    python -m scripts.families_census --json          # the same as one JSON document
    python -m scripts.families_census qwen3_moe dbrx  # only these types

For every ``model_type`` of transformers' causal-LM auto mapping, a tiny
random model is built from the config class's defaults shrunk by attribute
name (``tests/tiny_models.py``); types whose model has no experts module are
not MoE and are left out. Then, per type:

- **collect**: the MoE layers are found, :class:`~core.collect.capture.RouterCapture`
  runs, the logits are bitwise those of the model without capture, and the
  statistics add up (softmax mass = tokens, top-k counts = tokens × k);
- **evaluate**: the family has masked routing, and a masked forward equals
  the *reference*: the same model with the dropped experts' router logits
  set to −inf where the router computes them (and a correction bias at −inf,
  so a sigmoid router cannot still select them), computed here independently
  of the adapters;
- **prune**: ``lens prune``'s checkpoint of the saved model loads without
  missing or unexpected weights and its logits equal the reference's (1e-5).

So the next transformers release shows at once what broke or arrived. It is
not part of the test suite (a few minutes on 2 cores); ``tests/scripts``
runs it on three types.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Token ids of the census batch (tiny vocabularies are 128 here).
TOKENS = [
    [5, 17, 99, 3, 120, 41, 7, 7, 110, 33, 64, 12],
    [101, 8, 8, 90, 14, 30, 6, 77, 50, 21, 3, 44],
]
#: Each layer keeps half the experts of the tiny model's 8 (two of each group of four); a
#: hash-routed layer keeps all of them.
KEPT = ([0, 2, 5, 7], [1, 3, 4, 6])
#: Router-side tensors that bias *selection*: set to −inf for dropped experts in the reference.
SELECTION_BIASES = (
    "e_score_correction_bias",
    "expert_bias",
    "correction_bias",
    "balancing_biases",  # Zaya
)


@dataclass
class Row:
    """One model type's result: each stage ``ok``, ``no`` (refused / wrong, with why) or ``-``."""

    model_type: str
    family: str = "-"
    moe: bool = True
    collect: str = "-"
    evaluate: str = "-"
    prune: str = "-"
    why: str = ""
    seconds: float = 0.0


def causal_lm_types() -> list[str]:
    """Every causal-LM ``model_type`` of the installed transformers whose modeling code has experts.

    A cheap text filter (the class's modeling file mentions ``experts``) keeps
    the ~130 dense types from being built; :func:`is_moe` then decides on the
    instantiated model.
    """
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    models = Path(transformers.__file__).parent / "models"
    owner: dict[str, str] = {}
    for path in models.glob("*/modeling_*.py"):
        text = path.read_text(encoding="utf-8")
        if "experts" not in text:
            continue
        for cls in re.findall(r"^class (\w+)\(", text, flags=re.M):
            owner[cls] = str(path)
    return sorted(t for t, cls in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items() if cls in owner)


def is_moe(model) -> bool:
    """A model with a module named ``experts`` (fused or a list) or an MoE/sparse block class."""
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        cls = type(module).__name__
        if leaf == "experts" or re.search(r"(Moe|MoE|Sparse.*Block|Experts)", cls):
            return True
    return False


def _one_line(exc: BaseException) -> str:
    """The error's first line, without the list of supported families, at most 140 characters."""
    text = (str(exc).strip().splitlines() or [""])[0].split(" (supported:")[0]
    text = re.sub(r"/tmp/\S+: ", "", text).replace("census: ", "")
    return f"{type(exc).__name__}: {text}"[:140]


def _batch():
    import torch

    ids = torch.tensor(TOKENS)
    return ids, torch.ones_like(ids)


def _logits(model):
    import torch

    ids, attention = _batch()
    with torch.no_grad():
        return model(ids, attention_mask=attention).logits


def check_collect(model) -> tuple[str, str, list]:
    """Capture runs, logits bitwise unchanged, statistics add up."""
    import torch

    from core.collect.capture import RouterCapture
    from core.families.layers import find_moe_layers

    layers = find_moe_layers(model)
    family = layers[0].family.name
    plain = _logits(model)
    ids, attention = _batch()
    with RouterCapture(layers, energy=True) as capture, torch.no_grad():
        capture.begin_batch(attention)
        captured = model(ids, attention_mask=attention).logits
        sums = capture.end_batch()
    if not torch.equal(plain, captured):
        return family, "logits change under capture", layers
    tokens = ids.shape[1]
    mass = sums["prob_sum"].sum(axis=-1)
    if abs(mass - tokens).max() > 1e-3:
        return (
            family,
            f"prob_sum rows sum to {mass.min():.3f}..{mass.max():.3f}, not {tokens}",
            layers,
        )
    counts = sums["topk_count"].sum(axis=-1)
    want = [tokens * layer.top_k for layer in layers]
    if not (counts == want).all():
        return family, f"top-k counts {counts.tolist()} per sample, expected {want}", layers
    return family, "", layers


def _output_drop(weight, drop, kept):
    """Which of the router linear's outputs to set to −inf: the dropped experts' columns, or
    for a product-key router (2·√E outputs, expert i·√E + j scoring key i + key j) the keys
    no kept expert uses, in both halves; for a kept sub-grid I × I that leaves exactly the
    kept experts selectable."""
    import torch

    keys = math.isqrt(len(drop))
    if len(weight) == len(drop) or len(weight) != 2 * keys:
        return drop
    used = {e // keys for e in kept} | {e % keys for e in kept}
    unused = torch.tensor([i not in used for i in range(keys)])
    return torch.cat([unused, unused])


@contextlib.contextmanager
def reference_mask(model, layers, kept):
    """The model with dropped experts' router logits at −inf, independent of the adapters.

    ``torch.nn.functional.linear`` is wrapped so that a call with a router's
    weight returns its logits with the dropped columns at −inf (the router's
    own code then does the rest of its routing), and selection biases of the
    dropped experts are set to −inf. Yields a list counting the patched calls
    per layer, so a router that computes its logits some other way is noticed.
    """
    import torch

    functional = torch.nn.functional
    original = functional.linear
    by_weight = {}
    for i, layer in enumerate(layers):
        weight = getattr(layer.router, "weight", None)
        if weight is None:  # the router's linear: the 2-D weight with a row per expert
            weight = next(
                (
                    p
                    for p in layer.router.parameters()
                    if p.ndim == 2 and len(p) == layer.num_experts
                ),
                next((p for p in layer.router.parameters() if p.ndim == 2), None),
            )
        experts = layer.num_experts
        drop = torch.ones(experts, dtype=torch.bool)
        drop[list(kept[i])] = False
        if weight is not None:
            by_weight[id(weight)] = (i, _output_drop(weight, drop, kept[i]))
    calls = [0] * len(layers)
    saved = []

    def linear(input, weight, bias=None):
        out = original(input, weight, bias)
        hit = by_weight.get(id(weight))
        if hit is None:
            return out
        i, drop = hit
        calls[i] += 1
        full = torch.zeros(out.shape[-1], dtype=torch.bool)
        full[: drop.numel()] = drop
        return out.masked_fill(full, float("-inf"))

    with torch.no_grad():
        for i, layer in enumerate(layers):
            dropped = [e for e in range(layer.num_experts) if e not in kept[i]]
            for name, tensor in [*layer.block.named_parameters(), *layer.block.named_buffers()]:
                if name.rsplit(".", 1)[-1] in SELECTION_BIASES and tensor.shape[-1] == len(drop):
                    saved.append((tensor, tensor.clone()))
                    tensor[..., dropped] = float("-inf")
    functional.linear = linear
    try:
        yield calls
    finally:
        functional.linear = original
        with torch.no_grad():
            for tensor, value in saved:
                tensor.copy_(value)


def check_evaluate(model, layers) -> str:
    """Masked routing exists and its forward equals the reference's bitwise (or within 1e-6)."""
    import numpy as np

    from core.evaluate.masking import MaskedRouting, check_supported

    check_supported(layers, "census")  # a family's own refusal first, not a failed reference
    keep = np.zeros((len(layers), layers[0].num_experts), dtype=bool)
    for i, ids in enumerate(_kept(layers)):
        keep[i, ids] = True
    with reference_mask(model, layers, _kept(layers)) as calls:
        reference = _logits(model)
    if not all(calls):
        return "reference unavailable: the router's logits are not a linear of its weight"
    with MaskedRouting(layers, "census") as routing:
        routing.use(keep)
        masked = _logits(model)
    if (reference - _logits(model)).abs().max() < 1e-4:
        return "the mask does not change these logits (test inconclusive)"
    difference = (masked - reference).abs().max().item()
    return (
        "" if difference <= 1e-6 else f"masked logits differ from the reference by {difference:.2e}"
    )


def _kept(layers) -> list[list[int]]:
    """:data:`KEPT` per layer, adapted where the family's pruned checkpoint cannot express it:
    every expert of a hash-routed layer (a token-id table picks its experts, which no mask can
    reroute: DeepSeek-V4's ``tid2eid``); a skip class that a pruned model always scores (Zaya)
    is kept in place of the last kept routed expert; product keys (Doge, √E keys) keep the
    sub-grid of the keys among KEPT."""
    from core.families.layouts import IdentityExperts, ProductKeys

    prune = layers[0].family.prune
    layout = prune.layout if prune is not None else None
    experts = layers[0].num_experts
    kept = [list(KEPT[i % 2]) for i in range(len(layers))]
    if isinstance(layout, IdentityExperts) and not layout.count_key:
        skip = list(range(experts - layout.fixed, experts))
        kept = [[*ids[: len(ids) - len(skip)], *skip] for ids in kept]
    if isinstance(layout, ProductKeys):
        keys = math.isqrt(experts)
        kept = [[i * keys + j for i in ids if i < keys for j in ids if j < keys] for ids in kept]
    return [
        list(range(layer.num_experts)) if _hash_routed(layer) else ids
        for layer, ids in zip(layers, kept, strict=True)
    ]


def _hash_routed(layer) -> bool:
    """Whether the layer's router holds a token-id → experts table, seen on the model itself."""
    return any(name.endswith("tid2eid") for name, _ in layer.router.named_buffers())


def prune_and_reload(model, layers, folder: Path, kept: list[list[int]], criterion: str):
    """Save ``model`` under ``folder/source``, ``lens prune`` it keeping ``kept`` per layer into
    ``folder/pruned``, and load that back: ``(pruned model, transformers' loading info)``."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.formats.mask import Mask
    from core.prune.surgery import prune_checkpoint

    source, out = folder / "source", folder / "pruned"
    model.save_pretrained(str(source))
    mask = Mask(
        model=str(source),
        num_experts=layers[0].num_experts,
        criterion=criterion,
        sources=[],
        layers=[list(ids) for ids in kept],
    )
    prune_checkpoint(source, mask, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_pretrained(
            str(out), dtype=torch.float32, output_loading_info=True
        )


def check_prune(model, layers, folder: Path) -> str:
    """``lens prune`` of the saved model loads cleanly and equals the reference (1e-5)."""
    pruned, info = prune_and_reload(model, layers, folder, _kept(layers), "census")
    bad = [k for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)]
    if bad:
        return f"pruned checkpoint loads with {bad[0]}: {sorted(info[bad[0]])[:2]}"
    with reference_mask(model, layers, _kept(layers)):
        reference = _logits(model)
    difference = (_logits(pruned.eval()) - reference).abs().max().item()
    return (
        "" if difference <= 1e-5 else f"pruned logits differ from the reference by {difference:.2e}"
    )


def census_type(model_type: str) -> Row:
    """Build the tiny model of one type and run the three checks; never raises."""
    from tests.tiny_models import build_tiny_model_of_type

    row = Row(model_type)
    start = time.perf_counter()
    try:
        model = build_tiny_model_of_type(model_type)
    except Exception as exc:  # a config the generic shrink cannot build: report, go on
        row.collect, row.why = "?", f"tiny model not built: {_one_line(exc)}"
        return _timed(row, start)
    if not is_moe(model):
        row.moe = False
        return _timed(row, start)
    try:
        row.family, problem, layers = check_collect(model)
    except Exception as exc:
        row.collect, row.why = "no", _one_line(exc)
        return _timed(row, start)
    if problem:
        row.collect, row.why = "no", problem
        return _timed(row, start)
    row.collect = "ok"
    reasons = []
    try:
        problem = check_evaluate(model, layers)
    except Exception as exc:
        problem = _one_line(exc)
    row.evaluate = "no" if problem else "ok"
    if problem:
        reasons.append(f"evaluate: {problem}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            problem = check_prune(model, layers, Path(tmp))
        except Exception as exc:
            problem = _one_line(exc)
    row.prune = "no" if problem else "ok"
    if problem:
        reasons.append(f"prune: {problem}")
    row.why = "; ".join(reasons)
    return _timed(row, start)


def _timed(row: Row, start: float) -> Row:
    row.seconds = round(time.perf_counter() - start, 2)
    return row


def summary(rows: list[Row]) -> dict:
    moe = [r for r in rows if r.moe]
    return {
        "moe_types": len(moe),
        "collect": sum(r.collect == "ok" for r in moe),
        "evaluate": sum(r.evaluate == "ok" for r in moe),
        "prune": sum(r.prune == "ok" for r in moe),
        "not_built": sum(r.collect == "?" for r in moe),
    }


def run(types: list[str], progress=None) -> list[Row]:
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model_type in types:
            row = census_type(model_type)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def markdown(rows: list[Row], version: str) -> str:
    """The census as a Markdown table with its counts (for the README)."""
    counts = summary(rows)
    total = counts["moe_types"]
    lines = [
        f"transformers {version}: {total} MoE causal-LM types; collect {counts['collect']}, "
        f"evaluate {counts['evaluate']}, prune {counts['prune']}.",
        "",
        "| model_type | family | collect | evaluate | prune | why not |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.moe:
            why = re.sub(r"\b\w*Error: ", "", row.why).replace("|", "/")
            why = re.sub(r"\(AXK1MoE, [^)]*\)?", "(…)", why)[:120]
            lines.append(
                f"| `{row.model_type}` | {row.family} | {row.collect} | {row.evaluate} | "
                f"{row.prune} | {why} |"
            )
    return "\n".join(lines)


def _line(row: Row) -> str:
    return (
        f"{row.model_type:<26} {row.family:<14} {row.collect:<8} {row.evaluate:<8} "
        f"{row.prune:<6} {row.why}"
    ).rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("types", nargs="*", help="model types (default: every causal-LM type)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--markdown", action="store_true", help="print a Markdown table (the README's)"
    )
    args = parser.parse_args(argv)
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    types = args.types or causal_lm_types()
    if args.markdown:
        rows = run(types)
        print(markdown(rows, transformers.__version__))
        return 0
    if not args.json:
        print(f"transformers {transformers.__version__}: {len(types)} causal-LM types")
        print(f"{'model_type':<26} {'family':<14} {'collect':<8} {'evaluate':<8} {'prune':<6} why")

    def show(row: Row) -> None:
        if not args.json and row.moe:
            print(_line(row), flush=True)

    rows = run(types, progress=show)
    counts = summary(rows)
    if args.json:
        doc = {
            "transformers": transformers.__version__,
            "summary": counts,
            "types": [asdict(r) for r in rows if r.moe],
            "not_moe": [r.model_type for r in rows if not r.moe],
        }
        print(json.dumps(doc, indent=2))
    else:
        total = counts["moe_types"]
        print(
            f"{total} MoE types: collect {counts['collect']}/{total}, evaluate "
            f"{counts['evaluate']}/{total}, prune {counts['prune']}/{total}"
            + (f" ({counts['not_built']} tiny models not built)" if counts["not_built"] else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
