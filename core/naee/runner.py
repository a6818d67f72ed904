"""``lens mask --criterion naee``: load the model, read and batch the data, search every layer.

Loading, reading, tokenizing and batching are the shared model runtime's
(:mod:`core.model`), exactly as ``lens collect`` and ``lens evaluate`` do
them, so NAEE sees the same tokens. Layers are searched one after another,
each on its own inputs from the unpruned model (:mod:`core.naee.inputs`),
and the result is handed to mask making as
:class:`~core.masks.criteria.NaeeScores`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.collect.data import load_samples
from core.errors import LensError
from core.evaluate.masking import check_supported
from core.families.layers import find_moe_layers
from core.masks.criteria import NaeeScores
from core.model.batching import BatchPadder, backbone_of, plan_batches
from core.model.loading import load_model_and_tokenizer, preflight
from core.model.options import ModelOptions
from core.model.tokenize import tokenize
from core.naee.inputs import layer_inputs
from core.naee.search import MAX_SUBSETS, LayerProblem, choose_method, search_layer, work

OBJECTIVE = "sum over non-padding calibration tokens of ||Z - Z_hat||^2 of the routed output"


@dataclass(frozen=True)
class NaeeProgress:
    """Where the search is: layer ``layer`` of ``layers``, ``done`` of ``total`` subsets."""

    stage: str  # "loading" | "inputs" | "search" | "done"
    layer: int
    layers: int
    done: int
    total: int
    method: str = ""


def run_naee(
    options: ModelOptions,
    r: int,
    *,
    search: str = "auto",
    max_subsets: int = MAX_SUBSETS,
    report_gap: bool = False,
    progress: Callable[[NaeeProgress], None] | None = None,
) -> NaeeScores:
    """NAEE's kept set of ``r`` experts per layer for the model and data of ``options``.

    ``search`` is ``auto`` (exact when C(E, r) ≤ ``max_subsets``, else greedy),
    ``exact`` or ``greedy``. With ``report_gap`` a greedy layer whose
    enumeration is feasible is also searched exactly and the gap recorded.
    """
    options.validate()
    samples = load_samples(
        options.data,
        text_field=options.text_field,
        split=options.split,
        dataset_config=options.dataset_config,
        num_samples=options.num_samples,
    )
    preflight(options)
    _tell(progress, NaeeProgress("loading", 0, 0, 0, 0))
    model, tokenizer = load_model_and_tokenizer(options)
    layers = find_moe_layers(model)
    check_supported(layers, options.model)
    num_experts, top_k = layers[0].num_experts, layers[0].top_k
    if not top_k <= r <= num_experts:
        raise LensError(f"--r {r} is outside {top_k}..{num_experts} (the model's top-k to E)")
    method = choose_method(num_experts, r, search, max_subsets)
    compare = report_gap and method == "greedy" and work(num_experts, r, "exact") <= max_subsets

    token_ids = tokenize(tokenizer, samples, options)
    usable = [i for i, ids in enumerate(token_ids) if len(ids) >= 1]
    if not usable:
        raise LensError(f"{options.data}: no sample has any token")
    plan = plan_batches(usable, [len(ids) for ids in token_ids], options.batch_size)
    batches = [[token_ids[i] for i in batch] for batch in plan]
    backbone = backbone_of(model) or model
    padder = BatchPadder(backbone, tokenizer)

    scores = np.zeros((len(layers), num_experts))
    per_layer: list[dict[str, Any]] = []
    tokens = 0
    for layer in layers:
        _tell(progress, NaeeProgress("inputs", layer.index, len(layers), 0, 0, method))
        inputs = layer_inputs(backbone, padder, layer, batches)
        tokens = int(inputs.shape[0])
        problem = LayerProblem(layer, inputs)

        def tick(done: int, total: int, index: int = layer.index) -> None:
            _tell(progress, NaeeProgress("search", index, len(layers), done, total, method))

        result = search_layer(problem, r, method, tick, compare_exact=compare)
        scores[layer.index] = _scores(result.kept, result.dropped_order, num_experts)
        per_layer.append(result.to_json())
        del problem, inputs
    _tell(progress, NaeeProgress("done", len(layers), len(layers), 0, 0, method))
    metadata = {
        "objective": OBJECTIVE,
        "search": method,
        "max_subsets": max_subsets,
        "data": options.data,
        "samples": len(usable),
        "tokens": tokens,
        "max_length": options.max_length,
        "layers": per_layer,
    }
    return NaeeScores(model=options.model, scores=scores, r=r, top_k=top_k, metadata=metadata)


def _scores(kept: list[int], dropped_order: list[int], num_experts: int) -> np.ndarray:
    """Kept experts above every dropped one; greedy's later-dropped above earlier-dropped."""
    row = np.zeros(num_experts)
    for step, e in enumerate(dropped_order):
        row[e] = step + 1
    row[kept] = num_experts + 1
    return row


def _tell(progress: Callable[[NaeeProgress], None] | None, event: NaeeProgress) -> None:
    if progress is not None:
        progress(event)
