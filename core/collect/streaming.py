"""``lens collect --stream-layers``: collection with one decoder layer in memory at a time.

The whole-model runner (:mod:`core.collect.runner`) needs every weight
resident. Here the model is a skeleton (:class:`~core.model.layerwise.LayerwiseModel`):

1. the input embeddings are loaded, every batch is embedded, and the hidden
   states go to slot ``a`` of the run's :class:`~core.collect.hidden.HiddenStore`;
2. for each decoder layer up to the last MoE layer: load its weights, run
   every batch from the input slot through it with the usual
   :class:`~core.collect.capture.RouterCapture` on its MoE block, write the
   outputs to the other slot, save the layer's per-sample statistics, free it;
3. assemble the layers' statistics into one chunk, and the chunks (all ranks)
   into the bundle, exactly as the whole-model runner does.

Batches are planned exactly as a whole-model run plans them, so each layer
sees the same padded batches and the bundle is the same. After each layer
the state file records how far the run got; a killed run resumes at the
first unfinished layer from the hidden states of the last finished one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.collect.capture import RouterCapture
from core.collect.config import CollectConfig, CollectionCancelled
from core.collect.data import Sample
from core.collect.distributed import Coordinator, Ranks
from core.collect.hidden import HiddenStore, human_bytes
from core.collect.partial import PartialRun
from core.errors import LensError
from core.formats.bundle import OPTIONAL_TENSORS, bundle_metadata
from core.io.atomic import atomic_write_text
from core.model.batching import BatchPadder, plan_batches
from core.model.labels import dataset_label
from core.model.tokenize import tokenize


def stream_fingerprint(fingerprint: dict, config: CollectConfig, world: int) -> dict:
    """A streamed run's hidden states depend on the batch plan: resume only with the same one."""
    return {
        **fingerprint,
        "stream_layers": True,
        "batch_size": config.options.batch_size,
        "padding_side": config.options.padding_side,
        "world_size": world,
    }


class _State:
    """How far one rank got: ``{"next_layer": i, "slot": "a"}`` or ``{"finished": true}``."""

    def __init__(self, folder: Path, writer: str) -> None:
        self.path = folder / f"stream-{writer}.json"

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError):
            raise LensError(f"{self.path}: unreadable; delete the partial folder") from None

    def write(self, **state: Any) -> None:
        atomic_write_text(self.path, json.dumps(state, sort_keys=True))


class _Job:
    """What the provenance writer reads of a job (padding side, how norms were obtained)."""

    def __init__(self, left: bool, names: tuple[str, ...], norm_method: list[str]) -> None:
        self.left = left
        self.capture_names = names
        self.capture = self
        self.norm_method = norm_method


def collect_streaming(
    config: CollectConfig,
    samples: list[Sample],
    fingerprint: dict,
    partial: PartialRun,
    ranks: Ranks,
    coordinator: Coordinator,
    report: Any,
    should_stop: Any,
) -> Path:
    """Collect ``config`` one decoder layer at a time; see the module docstring."""
    from core.collect.runner import _bundle_dtypes, _provenance  # one home for both runners
    from core.model.layerwise import LayerwiseModel
    from core.model.loading import load_tokenizer

    out = config.out
    if config.keep_raw is not None:
        raise LensError("--keep-raw is not available with --stream-layers")
    report("loading", f"building the skeleton of {config.options.model} (no weights)")
    model = LayerwiseModel(config.options)
    tokenizer = load_tokenizer(config.options)
    report("tokenizing", f"tokenizing {len(samples)} samples")
    token_ids = tokenize(tokenizer, samples, config.options)
    usable = [i for i, ids in enumerate(token_ids) if len(ids)]
    if not usable:
        raise LensError(f"{config.options.data}: no sample has any token after tokenization")
    lengths = [len(ids) for ids in token_ids]
    batches = ranks.mine(plan_batches(usable, lengths, config.options.batch_size))
    if ranks.is_main:
        partial.open()
    coordinator.barrier()
    if not ranks.is_main:
        partial.open()
    writer = f"r{ranks.rank}"
    state = _State(partial.folder, writer)
    padder = BatchPadder(model.backbone, tokenizer)
    padder.device = model.device
    shapes = [(len(b), max(lengths[i] for i in b)) for b in batches]
    store = HiddenStore(partial.folder, writer, shapes, model.model.config.hidden_size, model.dtype)
    model.map_large_blocks(max(store.sizes, default=0))
    num_layers = len(model.moe_layers)
    moe_first = model.moe_layers[0]
    names = RouterCapture([replace(moe_first, index=0)], energy=config.energy).names
    norm_method: list[str] = []
    mine = sum(len(b) for b in batches)
    report.samples_total = mine
    saved = state.read()
    try:
        if not saved.get("finished") and batches:
            store.check_disk()
            report(
                "collecting",
                f"hidden states between layers: {human_bytes(2 * store.slot_bytes)} of disk "
                f"in {partial.folder}",
            )
            _stream(
                model,
                padder,
                store,
                state,
                saved,
                batches,
                token_ids,
                partial,
                config,
                names,
                norm_method,
                report,
                should_stop,
            )
            _write_chunk(
                partial, batches, samples, token_ids, names, num_layers, writer, _bundle_dtypes
            )
            state.write(finished=True)
    finally:
        store.close_all()
    coordinator.barrier()  # every rank's chunk is on disk
    if ranks.is_main:
        report("writing", f"writing {out}")
        tensor_names = ["prob_sum", "token_count", "example_ids"] + [
            n for n in OPTIONAL_TENSORS if n in names
        ]
        norm = (
            json.loads(partial.folder.joinpath(f"norms-{writer}.json").read_text())
            if (partial.folder / f"norms-{writer}.json").exists()
            else norm_method
        )
        job = _Job(padder.left, names, norm)
        provenance = _provenance(
            config,
            model.model,
            model.moe_layers,
            job,
            fingerprint,
            len(samples) - len(usable),
            ranks,
        )
        provenance["device"] = str(model.device)  # the skeleton itself sits on "meta"
        metadata = bundle_metadata(
            model=config.options.model,
            dataset=dataset_label(config.options),
            num_layers=num_layers,
            num_experts=moe_first.num_experts,
            top_k=moe_first.top_k,
            **provenance,
            stream_layers="true",
        )
        written = partial.assemble(out, tensor_names, metadata)
        if written != len(usable):
            raise LensError(
                f"{partial.folder}: holds {written} of {len(usable)} samples after every rank "
                "finished; re-run to collect the rest"
            )
        partial.remove()
    coordinator.barrier()
    report("done", f"wrote {out}")
    return out


def _stream(
    model: Any,
    padder: BatchPadder,
    store: HiddenStore,
    state: _State,
    saved: dict,
    batches: list[list[int]],
    token_ids: list,
    partial: PartialRun,
    config: CollectConfig,
    names: tuple[str, ...],
    norm_method: list[str],
    report: Any,
    should_stop: Any,
) -> None:
    """Embed (unless resumed past it), then run each layer over every batch."""
    last = model.last_layer
    total_layers = last + 1
    model.prepare()
    if "next_layer" not in saved:
        report("collecting", f"embedding {report.samples_total} samples")
        model.load_embeddings()
        store.open("a")
        for b, batch in enumerate(batches):
            inputs, _, _ = padder.pad([token_ids[i] for i in batch])
            store.write("a", b, model.embed(inputs))
        store.close("a")
        model.free_embeddings()
        saved = {"next_layer": 0, "slot": "a"}
        state.write(**saved)
    elif saved["next_layer"] > 0:
        report("collecting", f"resuming at layer {saved['next_layer'] + 1} of {total_layers}")
    slot = saved["slot"]
    report.collect_start = time.perf_counter()
    for index in range(saved["next_layer"], total_layers):
        other = "b" if slot == "a" else "a"
        layer = model.load_layer(index)
        moe = model.moe_of_layer.get(index)
        capture = None
        if moe is not None:
            capture = RouterCapture([replace(moe, index=0)], energy=config.energy)
            capture.__enter__()
        rows: list[dict[str, np.ndarray]] = []
        write_out = index < last
        if write_out:
            store.open(other)
        report.samples_done = 0
        try:
            for b, batch in enumerate(batches):
                if should_stop is not None and should_stop():
                    raise CollectionCancelled(
                        f"collection stopped in layer {index + 1} of {total_layers}; finished "
                        f"layers are saved in {partial.folder} and re-running resumes"
                    )
                inputs, _, mask = padder.pad([token_ids[i] for i in batch])
                call = model.layer_calls(inputs, index)[index]
                hidden = store.read(slot, b, model.device)
                if capture is not None:
                    capture.begin_batch(inputs["attention_mask"])
                out = _run_layer(call, layer, hidden, len(batch), mask.shape[1])
                if capture is not None:
                    sums = capture.end_batch()
                    rows.append({name: sums[name][:, 0, :] for name in names})
                if write_out:
                    store.write(other, b, out)
                report.samples_done += len(batch)
                tokens = int(mask.sum())
                report.new_samples += len(batch) if index == last else 0
                report.new_tokens += tokens if index == last else 0
                report("collecting", f"layer {index + 1} of {total_layers}")
                _test_pause("LENS_TEST_PAUSE_IN_LAYER", index, b)
        finally:
            if capture is not None:
                capture.close()
            if write_out:
                store.close(other, sync=False)
        # The last batch's activations and the layer go before the next layer is read.
        inputs = mask = call = hidden = out = None
        model.free(layer)
        if write_out:
            store.open(other)
            store.close(other, sync=True)
        if moe is not None:
            _save_layer(partial.folder, store.writer, moe.index, rows, names)
            if capture is not None and capture.norm_method:
                norms_path = partial.folder / f"norms-{store.writer}.json"
                known = json.loads(norms_path.read_text()) if norms_path.exists() else []
                atomic_write_text(norms_path, json.dumps(known + capture.norm_method[:1]))
        slot = other if write_out else slot
        state.write(next_layer=index + 1, slot=slot)
        _test_pause("LENS_TEST_PAUSE_AFTER_LAYER", index, None)


def _run_layer(call: Any, layer: Any, hidden: Any, batch: int, seq: int) -> Any:
    import torch  # lazy: optional dependency (the collect extra)

    try:
        with torch.inference_mode():
            return call.run(layer, hidden)
    except torch.OutOfMemoryError:
        raise LensError(
            f"out of memory on a batch of {batch} × {seq} tokens in one layer; finished layers "
            "are saved: re-run with the same settings on a larger device (the batch size is "
            "part of a streamed run's hidden states)"
        ) from None


def _layer_path(folder: Path, writer: str, moe_index: int) -> Path:
    return folder / f"layer-{writer}-{moe_index:04d}.safetensors"


def _save_layer(
    folder: Path, writer: str, moe_index: int, rows: list[dict], names: tuple[str, ...]
) -> None:
    """One MoE layer's per-sample statistics ``[n, E]`` (batch order), written atomically."""
    from safetensors.numpy import save

    from core.io.atomic import atomic_write_bytes

    arrays = {name: np.ascontiguousarray(np.concatenate([r[name] for r in rows])) for name in names}
    atomic_write_bytes(_layer_path(folder, writer, moe_index), save(arrays))


def _write_chunk(
    partial: PartialRun,
    batches: list[list[int]],
    samples: list[Sample],
    token_ids: list,
    names: tuple[str, ...],
    num_layers: int,
    writer: str,
    bundle_dtypes: Any,
) -> None:
    """Stack the layers' statistics into ``[n, L, E]`` and save them as this rank's chunk."""
    from core.io.safetensors import read_safetensors

    # A run killed between writing its chunk and recording "finished" left that same
    # chunk behind: replace it rather than save every sample twice.
    for stale in partial.chunk_paths():
        if stale.name.startswith(f"chunk-{writer}-"):
            stale.unlink()
    order = [i for batch in batches for i in batch]
    layers = [
        read_safetensors(_layer_path(partial.folder, writer, j))[1] for j in range(num_layers)
    ]
    sums = {name: np.stack([np.asarray(layer[name]) for layer in layers], axis=1) for name in names}
    partial.write_chunk(
        {
            "sample_index": np.asarray(order, dtype=np.int64),
            "example_ids": np.array([samples[i].example_id for i in order], np.int64),
            "token_count": np.array([len(token_ids[i]) for i in order], np.int64),
            **bundle_dtypes(sums),
        }
    )


def _test_pause(variable: str, layer: int, batch: int | None) -> None:
    """Kill tests set ``VARIABLE=LAYER[:BATCH]:SECONDS`` to hold a run at a known point."""
    value = os.environ.get(variable)
    if not value:
        return
    parts = value.split(":")
    where = (int(parts[0]), int(parts[1]) if len(parts) == 3 else None)
    if where == (layer, batch):
        print(f"lens-test: paused at layer {layer} batch {batch}", file=sys.stderr, flush=True)
        time.sleep(float(parts[-1]))
