"""``lens evaluate --stream-layers``: masked losses with one decoder layer in memory at a time.

Every mask of a run is evaluated in one pass over the layers: each variant
(the original model, then each mask) keeps its own hidden states on disk
(:class:`~core.collect.hidden.HiddenStore`, in a temporary folder under
``TMPDIR``), so each layer's weights are read once for all of them. Layer 0
reads the shared embeddings; each MoE layer routes every variant with its
own mask row (:class:`~core.evaluate.masking.MaskedRouting` on that layer
alone). After the last layer the final norm and the LM head score each batch
exactly as the whole-model runner does (:func:`~core.evaluate.runner.score_hidden`),
the original first so top-1 agreement has its reference.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.collect.config import CollectProgress
from core.collect.data import Sample
from core.collect.hidden import HiddenStore
from core.errors import LensError
from core.evaluate.masking import MaskedRouting, check_supported
from core.formats.mask import Mask
from core.model.batching import BatchPadder, plan_batches
from core.model.tokenize import tokenize


def evaluate_streaming(
    config: Any,
    masks: Sequence[Mask],
    samples: list[Sample],
    progress: Callable[[CollectProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> Any:
    """The same :class:`~core.formats.evaluation.Evaluation` as ``run_evaluation``, streamed."""
    from core.evaluate.runner import (
        EvaluationCancelled,
        _evaluation,
        _report,
        _Tally,
        check_masks_for_model,
        prepare_batch,
        score_hidden,
    )
    from core.model.layerwise import LayerwiseModel
    from core.model.loading import load_tokenizer

    options = config.options
    _report(progress, "loading", 0, len(samples), 0, 0.0, f"building {options.model} (no weights)")
    model = LayerwiseModel(options)
    layers = model.moe_layers
    check_supported(layers, options.model)
    names = [options.model, str(Path(options.model).resolve())]
    names.append(str(getattr(model.model.config, "_name_or_path", "") or ""))
    shape = (len(layers), layers[0].num_experts, layers[0].top_k)
    check_masks_for_model(masks, shape, options.model, names, config.allow_other_model)
    keeps = [mask.as_bool() for mask in masks]
    tokenizer = load_tokenizer(options)
    token_ids = tokenize(tokenizer, samples, options)
    usable = [i for i, ids in enumerate(token_ids) if len(ids) >= 2]
    if not usable:
        raise LensError(
            f"{options.data}: no sample has two or more tokens, so there is no next token to predict"
        )
    lengths = [len(ids) for ids in token_ids]
    batches = plan_batches(usable, lengths, options.batch_size)
    padder = BatchPadder(model.backbone, tokenizer)
    padder.device = model.device
    shapes = [(len(b), max(lengths[i] for i in b)) for b in batches]
    variants = 1 + len(keeps)
    tallies = [_Tally() for _ in range(variants)]
    total_layers = len(model.layers)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lens-evaluate-") as work:
        hidden = model.model.config.hidden_size
        stores = [
            HiddenStore(Path(work), f"v{v}", shapes, hidden, model.dtype) for v in range(variants)
        ]
        _check_disk(stores)
        model.map_large_blocks(max(stores[0].sizes, default=0))
        model.prepare()
        _report(progress, "evaluating", 0, len(usable), 0, 0.0, f"embedding {len(usable)} samples")
        model.load_embeddings()
        stores[0].open("a")
        for b, batch in enumerate(batches):
            inputs, _, _ = padder.pad([token_ids[i] for i in batch])
            stores[0].write("a", b, model.embed(inputs))
        stores[0].close("a")
        model.free_embeddings()
        slot = "a"
        for index in range(total_layers):
            other = "b" if slot == "a" else "a"
            layer = model.load_layer(index)
            moe = model.moe_of_layer.get(index)
            routing = None
            if moe is not None:
                routing = MaskedRouting([replace(moe, index=0)], options.model)
                routing.__enter__()
            for store in stores:
                store.open(other)
            done = 0
            try:
                for b, batch in enumerate(batches):
                    if should_stop is not None and should_stop():
                        raise EvaluationCancelled(
                            f"evaluation stopped in layer {index + 1} of {total_layers}; "
                            "nothing was written"
                        )
                    inputs, _, _ = padder.pad([token_ids[i] for i in batch])
                    call = model.layer_calls(inputs, index)[index]
                    for v, store in enumerate(stores):
                        source = stores[0] if index == 0 else store  # one shared embedding
                        state = source.read(slot, b, model.device)
                        if routing is not None:
                            keep = None if v == 0 else keeps[v - 1][moe.index : moe.index + 1]
                            routing.use(keep)
                        out = _run(call, layer, state)
                        if routing is not None and routing.calls()[0] == 0:
                            raise LensError(
                                f"{options.model}: the router of {moe.name} was never called; "
                                "masks cannot be applied in memory to this model"
                            )
                        store.write(other, b, out)
                    done += len(batch)
                    _report(
                        progress, "evaluating", done, len(usable), 0, start,
                        f"layer {index + 1} of {total_layers}",
                    )  # fmt: skip
            finally:
                if routing is not None:
                    routing.close()
                for store in stores:
                    store.close(other, sync=False)
            model.free(layer)
            slot = other
        norm, head = model.load_head()
        for b, batch in enumerate(batches):
            _, targets, valid = prepare_batch(padder, [token_ids[i] for i in batch])
            reference = None
            for v, store in enumerate(stores):
                state = _norm(norm, store.read(slot, b, model.device))
                top = score_hidden(head, state, targets, valid, tallies[v], reference)
                if v == 0:
                    reference = top
        for store in stores:
            store.close_all()
    harness = [{} for _ in range(variants)]
    order = [i for batch in batches for i in batch]  # the order every variant was scored in
    evaluation = _evaluation(
        config, masks, len(samples), len(usable), layers, tallies, harness, order
    )
    evaluation.extra["stream_layers"] = True
    _report(progress, "done", len(usable), len(usable), tallies[0].tokens, start, "")
    return evaluation


def _check_disk(stores: list[HiddenStore]) -> None:
    """Every variant's two slots must fit in the temporary folder's file system."""
    import shutil

    from core.collect.hidden import human_bytes

    need = sum(2 * store.slot_bytes for store in stores)
    folder = stores[0].folder
    free = shutil.disk_usage(folder).free
    if free < need:
        raise LensError(
            f"{folder}: --stream-layers needs {human_bytes(need)} of disk for {len(stores)} "
            f"variants' hidden states and only {human_bytes(free)} is free; point TMPDIR at a "
            "larger disk, or evaluate fewer masks or samples per run"
        )


def _run(call: Any, layer: Any, hidden: Any) -> Any:
    import torch  # lazy: optional dependency (the collect extra)

    with torch.inference_mode():
        return call.run(layer, hidden)


def _norm(norm: Any, hidden: Any) -> Any:
    import torch  # lazy: optional dependency (the collect extra)

    with torch.inference_mode():
        return norm(hidden)
