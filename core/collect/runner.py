"""Run a collection: data → tokenizer → batched forward with capture → bundle.

This is the one pipeline behind ``lens collect``, the TUI's collection view,
the sample-bundle build script and distributed runs (see
``docs/dev/collect-api.md``). Loading, tokenizing and batching are the
shared model runtime (:mod:`core.model`); torch is imported only inside the
functions that run the model, so importing this module is cheap.

The flow:

1. read the samples (``core.collect.data``) and tokenize each one alone,
   truncated to ``max_length`` (:mod:`core.model.tokenize`);
2. if ``out`` is already the finished bundle of this very run, stop there;
   otherwise open the resumable state beside it (``core.collect.partial``)
   and skip samples saved by an interrupted run;
3. batch the remaining samples longest first (padding waste stays low and an
   out-of-memory error shows up at once, not hours in), pad them, and run the
   model's backbone (no LM head: logits are not needed) with
   :class:`~core.collect.capture.RouterCapture` attached;
4. every ``checkpoint_seconds`` (and on cancel, error or the end) save the
   finished samples as a chunk;
5. assemble the chunks in sample order into the bundle, atomically, streaming.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.collect.capture import RouterCapture
from core.collect.config import CollectConfig, CollectionCancelled, CollectProgress, parse_shard
from core.collect.data import Sample, load_samples, samples_digest
from core.collect.distributed import Coordinator, Ranks, ranks_from_env
from core.collect.partial import PartialRun
from core.collect.raw import drop_unfinished_shards, next_shard_number, write_raw_shard
from core.collect.streaming import collect_streaming, stream_fingerprint
from core.errors import LensError
from core.families.layers import MoeLayer, find_moe_layers
from core.formats.bundle import OPTIONAL_TENSORS, BundleError, bundle_metadata, load_bundle
from core.model.batching import BatchPadder, backbone_of, plan_batches
from core.model.labels import dataset_label
from core.model.loading import ModelCache, describe_model, preflight
from core.model.tokenize import tokenize

__all__ = [
    "CollectConfig",
    "CollectProgress",
    "CollectionCancelled",
    "run_collection",
]

ProgressCallback = Callable[[CollectProgress], None]

#: Bumped when a change would make a resumed run mix incompatible chunks.
RUN_FORMAT = 1


class _Reporter:
    """Turns counters into :class:`CollectProgress` snapshots for the callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.start = time.perf_counter()
        self.collect_start: float | None = None
        self.new_samples = 0
        self.new_tokens = 0
        self.samples_done = 0
        self.samples_total = 0
        self.tokens_done = 0

    def __call__(self, stage: str, message: str = "") -> None:
        if self.callback is None:
            return
        now = time.perf_counter()
        busy = now - self.collect_start if self.collect_start is not None else 0.0
        self.callback(
            CollectProgress(
                stage=stage,
                samples_done=self.samples_done,
                samples_total=self.samples_total,
                tokens_done=self.tokens_done,
                elapsed_s=now - self.start,
                samples_per_s=self.new_samples / busy if busy > 0 else 0.0,
                tokens_per_s=self.new_tokens / busy if busy > 0 else 0.0,
                message=message,
            )
        )


def run_fingerprint(config: CollectConfig, samples: list[Sample]) -> dict:
    """Everything that changes the numbers: a resumed run must match it exactly."""
    return {
        "run_format": RUN_FORMAT,
        "model": config.options.model,
        "data": config.options.data,
        "text_field": config.options.text_field,
        "split": config.options.split,
        "dataset_config": config.options.dataset_config,
        "num_samples": config.options.num_samples,
        "max_length": config.options.max_length,
        "chat_template": config.options.chat_template,
        "energy": config.energy,
        "dtype": config.options.dtype,
        "shard": config.shard,
        "samples_sha256": samples_digest(samples),
    }


def _finished(out: Path, fingerprint: dict) -> bool:
    """Is ``out`` already the finished bundle of this exact run?"""
    try:
        bundle = load_bundle(out)
    except BundleError:
        return False
    return bundle.metadata.get("collect_fingerprint") == json.dumps(fingerprint, sort_keys=True)


def run_collection(
    config: CollectConfig,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    models: ModelCache | None = None,
) -> Path:
    """Collect router statistics of ``config.options.model`` on ``config.options.data`` into ``config.out``.

    ``progress`` is called from this thread after each stage change and batch;
    ``should_stop`` is polled between batches, and a ``True`` saves what is
    finished and raises :class:`CollectionCancelled` (a re-run resumes).
    ``models`` lets several runs on the same model share one loaded copy.
    Errors a user can fix raise :class:`LensError` with one clear line.
    """
    config.validate()
    ranks = ranks_from_env()
    report = _Reporter(progress if ranks.is_main else None)
    out = config.out
    # Nothing is reported before the inputs are known to be usable: a bad data file
    # or model gives one clean error and leaves nothing behind.
    samples = select_shard(
        load_samples(
            config.options.data,
            text_field=config.options.text_field,
            split=config.options.split,
            dataset_config=config.options.dataset_config,
            num_samples=config.options.num_samples,
        ),
        config.shard,
    )
    fingerprint = run_fingerprint(config, samples)
    if config.stream_layers:
        fingerprint = stream_fingerprint(fingerprint, config, ranks.world)
    partial = PartialRun(out, fingerprint, writer=f"r{ranks.rank}")
    if out.exists():
        if _finished(out, fingerprint) and not config.overwrite:
            if ranks.is_main:
                partial.remove()
            report.samples_done = report.samples_total = len(samples)
            report("done", f"{out} is already complete")
            return out
        if not config.overwrite:
            raise LensError(
                f"{out}: already exists and is not this run's finished bundle; "
                "pass --overwrite to replace it, or choose another --out"
            )
    config = _rank_device(config, ranks)
    preflight(config.options)
    coordinator = Coordinator(ranks)
    try:
        if config.stream_layers:
            return collect_streaming(
                config, samples, fingerprint, partial, ranks, coordinator, report, should_stop
            )
        return _collect(
            config,
            samples,
            fingerprint,
            partial,
            ranks,
            coordinator,
            report,
            should_stop,
            models or ModelCache(),
        )
    finally:
        coordinator.close()


def _collect(
    config: CollectConfig,
    samples: list[Sample],
    fingerprint: dict,
    partial: PartialRun,
    ranks: Ranks,
    coordinator: Coordinator,
    report: _Reporter,
    should_stop: Callable[[], bool] | None,
    models: ModelCache,
) -> Path:
    """Load, plan this rank's batches, collect them into chunks; rank 0 assembles."""
    out = config.out
    report("loading", f"loading {config.options.model}")
    model, tokenizer = models.get(config.options)
    layers = find_moe_layers(model)
    report("tokenizing", f"tokenizing {len(samples)} samples")
    token_ids = tokenize(tokenizer, samples, config.options)
    usable = [i for i, ids in enumerate(token_ids) if len(ids)]
    if not usable:
        raise LensError(f"{config.options.data}: no sample has any token after tokenization")
    if ranks.is_main:
        partial.open()
        if config.keep_raw is not None:
            config.keep_raw.mkdir(parents=True, exist_ok=True)
            drop_unfinished_shards(
                config.keep_raw, {samples[i].example_id for i in partial.done_samples()}
            )
    coordinator.barrier()  # the folder exists and stale raw shards are gone
    if not ranks.is_main:
        partial.open()  # checks that it belongs to this same run
    done = partial.done_samples() & set(usable)
    raw_shard = None
    if config.keep_raw is not None:
        raw_shard = next_shard_number(config.keep_raw) + ranks.rank
    coordinator.barrier()  # every rank has read the same done set before anyone writes
    todo = [i for i in usable if i not in done]
    lengths = [len(ids) for ids in token_ids]
    batches = ranks.mine(plan_batches(todo, lengths, config.options.batch_size))
    mine = sum(len(batch) for batch in batches)
    report.samples_total = mine + (len(done) if not ranks.distributed else 0)
    report.samples_done = report.samples_total - mine
    report.tokens_done = sum(len(token_ids[i]) for i in done) if not ranks.distributed else 0
    notes = []
    if ranks.distributed:
        notes.append(f"rank {ranks.rank} of {ranks.world}: {mine} of {len(todo)} samples left")
    if done:
        notes.append(f"resuming: {len(done)} of {len(usable)} samples already collected")
    note = "; ".join(notes)
    num_layers, num_experts, top_k = len(layers), layers[0].num_experts, layers[0].top_k
    dataset = dataset_label(config.options)
    raw_meta = {
        "model": config.options.model,
        "dataset": dataset,
        "num_layers": str(num_layers),
        "num_experts": str(num_experts),
        "top_k": str(top_k),
    }

    job = _BatchJob(model, tokenizer, layers, config)
    pending: list[dict[str, np.ndarray]] = []
    last_save = time.perf_counter()

    def save_pending() -> None:
        nonlocal last_save
        if pending:
            partial.write_chunk({k: np.concatenate([p[k] for p in pending]) for k in pending[0]})
            pending.clear()
        last_save = time.perf_counter()

    report("collecting", note)
    report.collect_start = time.perf_counter()
    try:
        with job:
            for batch in batches:
                if should_stop is not None and should_stop():
                    save_pending()
                    raise CollectionCancelled(
                        f"collection stopped after {report.samples_done} of "
                        f"{report.samples_total} samples; finished samples are saved in "
                        f"{partial.folder} and re-running resumes"
                    )
                sums, token_count, probs = job.run([token_ids[i] for i in batch])
                row = {
                    "sample_index": np.asarray(batch, dtype=np.int64),
                    "example_ids": np.array([samples[i].example_id for i in batch], np.int64),
                    "token_count": token_count,
                    **_bundle_dtypes(sums),
                }
                pending.append(row)
                if raw_shard is not None:
                    _write_raw(config.keep_raw, raw_shard, row, probs, raw_meta)
                    raw_shard += ranks.world  # ranks interleave shard numbers, never collide
                report.samples_done += len(batch)
                report.new_samples += len(batch)
                tokens = int(token_count.sum())
                report.tokens_done += tokens
                report.new_tokens += tokens
                if time.perf_counter() - last_save >= config.checkpoint_seconds:
                    save_pending()
                report("collecting", note)
    finally:
        save_pending()  # finished batches survive an error, a cancel or Ctrl-C

    coordinator.barrier()  # every rank's chunks are on disk
    if ranks.is_main:
        report("writing", f"writing {out}")
        names = ["prob_sum", "token_count", "example_ids"] + [
            name for name in OPTIONAL_TENSORS if name in job.capture_names
        ]
        metadata = bundle_metadata(
            model=config.options.model,
            dataset=dataset,
            num_layers=num_layers,
            num_experts=num_experts,
            top_k=top_k,
            **_provenance(
                config, model, layers, job, fingerprint, len(samples) - len(usable), ranks
            ),
        )
        written = partial.assemble(out, names, metadata)
        if written != len(usable):
            raise LensError(
                f"{partial.folder}: holds {written} of {len(usable)} samples after every rank "
                "finished; re-run to collect the rest"
            )
        partial.remove()
    coordinator.barrier()  # the bundle exists before any rank returns
    report("done", f"wrote {out}")
    return out


def select_shard(samples: list[Sample], shard: str | None) -> list[Sample]:
    """``--shard i/n``: every n-th sample from the i-th, so n runs cover the data once."""
    if shard is None:
        return samples
    index, count = parse_shard(shard)
    chosen = samples[index::count]
    if not chosen:
        raise LensError(f"--shard {shard}: no samples fall in this shard ({len(samples)} in all)")
    return chosen


def _rank_device(config: CollectConfig, ranks: Ranks) -> CollectConfig:
    """Under torchrun on GPUs, rank r uses cuda:LOCAL_RANK."""
    if (
        not ranks.distributed
        or config.options.device_map
        or config.options.device not in ("auto", "cuda")
    ):
        return config
    import torch  # lazy: optional dependency (the collect extra)

    if not torch.cuda.is_available():
        return config
    return replace(config, options=replace(config.options, device=f"cuda:{ranks.local_rank}"))


def _bundle_dtypes(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-sample sums in the bundle's dtypes (counts are exact integers in float32)."""
    converted = {}
    for name, values in sums.items():
        if name in OPTIONAL_TENSORS and OPTIONAL_TENSORS[name].kind == "i":  # the counts
            converted[name] = np.rint(values).astype(OPTIONAL_TENSORS[name])
        else:
            converted[name] = np.ascontiguousarray(values, dtype=np.float32)
    return converted


def _write_raw(
    folder: Path, shard: int, row: dict[str, np.ndarray], probs: list[Any], meta: dict[str, str]
) -> None:
    sums = {k: v for k, v in row.items() if k in OPTIONAL_TENSORS}
    for layer, layer_probs in enumerate(probs):
        write_raw_shard(
            folder,
            layer,
            shard,
            example_ids=row["example_ids"],
            ntokens=row["token_count"],
            routing_probs=layer_probs,
            sums={name: values[:, layer, :] for name, values in sums.items()},
            metadata=meta,
        )


class _BatchJob:
    """Pads a batch, runs the model's backbone with capture on, returns the sums."""

    def __init__(
        self, model: Any, tokenizer: Any, layers: list[MoeLayer], config: CollectConfig
    ) -> None:
        self.model = model
        self.backbone = backbone_of(model) or model
        self.padder = BatchPadder(self.backbone, tokenizer)
        self.left = self.padder.left
        self.capture = RouterCapture(
            layers, energy=config.energy, keep_token_probs=config.keep_raw is not None
        )
        self.capture_names = self.capture.names
        self.batch_size = config.options.batch_size

    def __enter__(self) -> _BatchJob:
        self.capture.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.capture.close()

    def run(self, sequences: list) -> tuple[dict[str, np.ndarray], np.ndarray, list]:
        import torch  # lazy: optional dependency (the collect extra)

        inputs, _, mask = self.padder.pad(sequences)
        self.capture.begin_batch(inputs["attention_mask"])
        try:
            with torch.inference_mode():
                self.backbone(**inputs)
        except torch.OutOfMemoryError:
            raise LensError(
                f"out of memory on a batch of {len(sequences)} × {mask.shape[1]} tokens; finished "
                "samples are saved: re-run with a smaller --batch-size (or --max-length) to resume"
            ) from None
        sums = self.capture.end_batch()
        probs = self.capture.token_probs() if self.capture.keep_token_probs else []
        return sums, mask.sum(dim=1).numpy().astype(np.int64), probs


def _provenance(
    config: CollectConfig,
    model: Any,
    layers: list,
    job: _BatchJob,
    fingerprint: dict,
    skipped: int,
    ranks: Ranks,
) -> dict[str, object]:
    import torch  # lazy: optional dependencies, only for their versions
    import transformers

    return {
        **describe_model(model),
        "tool": "expert-calibration-lens",
        "tool_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "python_version": sys.version.split()[0],
        "data_source": config.options.data,
        "text_field": config.options.text_field,
        "max_length": str(config.options.max_length),
        "batch_size": str(config.options.batch_size),
        "padding_side": "left" if job.left else "right",
        "chat_template": str(config.options.chat_template).lower(),
        "energy": str(config.energy).lower(),
        "skipped_samples": str(skipped),
        "routing": layers[0].family.routing,
        **_hash_routed_metadata(layers),
        "family": layers[0].family.name,
        "layer_names": json.dumps([layer.name for layer in layers]),
        "norm_method": job.capture.norm_method[0] if job.capture.norm_method else "none",
        "collect_args": json.dumps(config.to_json(), sort_keys=True),
        "world_size": str(ranks.world),
        "collect_command": config.command,
        "collect_fingerprint": json.dumps(fingerprint, sort_keys=True),
        **config.extra_metadata,
    }


def _hash_routed_metadata(layers: list) -> dict[str, str]:
    """``hash_routed_layers``: the MoE layers whose experts a token-id table chose (DeepSeek-V4).

    Their top-k counts are what the table chose, not a function of the router logits,
    so a reader must know which layers they are; absent when there are none.
    """
    hashed = [layer.index for layer in layers if layer.family.hash_routed(layer.router)]
    return {"hash_routed_layers": json.dumps(hashed)} if hashed else {}
