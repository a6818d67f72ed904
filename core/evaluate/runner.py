"""``lens evaluate``: next-token loss, perplexity and top-1 agreement of masks, in memory.

For the original model and for each mask (applied by
:class:`~core.evaluate.masking.MaskedRouting`, no checkpoint written) the
runner measures, over every non-padding *target* token of held-out text:

- ``loss``: mean next-token cross-entropy in nats, token-weighted over the
  whole dataset (a sample of T tokens contributes its T − 1 predictions);
- ``perplexity`` = exp(loss);
- ``top1_accuracy``: share of predictions whose argmax is the actual next token;
- ``top1_agreement``: share whose argmax equals the original model's;
- ``loss_increase_ci``: a paired bootstrap interval of the loss increase over
  held-out samples (:mod:`core.evaluate.loss_interval`), from the summed NLL
  and token count of every sample, tallied per sample for every variant.

Samples are tokenized alone and batched longest first exactly as ``lens
collect`` does (the shared runtime: :func:`core.model.tokenize.tokenize` and
:func:`core.model.batching.plan_batches`),
padded on the tokenizer's side with positions counting real tokens only.
The loop is batch-major: each batch runs through the original model, then
through each mask, so the original's argmax is never stored for the whole
dataset. Only the backbone runs in the forward pass; the LM head is applied
to the scored positions in chunks, so a 200k-token vocabulary never
materialises ``[batch, seq, vocab]`` logits.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.collect.config import CollectProgress
from core.collect.data import load_samples
from core.errors import LensError
from core.evaluate.harness import run_lm_eval
from core.evaluate.loss_interval import (
    DEFAULT_CI_LEVEL,
    DEFAULT_CI_REPLICATES,
    DEFAULT_CI_SEED,
    loss_increase_interval,
)
from core.evaluate.masking import MaskedRouting, check_supported
from core.families.layers import MoeLayer, find_moe_layers
from core.formats.evaluation import Evaluation, MaskResult
from core.formats.mask import Mask, check_mask_fits, read_mask
from core.masks.compare import unique_names
from core.model.batching import BatchPadder, backbone_of, plan_batches
from core.model.labels import dataset_label
from core.model.loading import load_model_and_tokenizer, preflight
from core.model.options import ModelOptions, split_settings
from core.model.tokenize import tokenize
from core.model_names import model_identity
from core.prune.checkpoint import Checkpoint

#: Logit elements computed at once by the chunked LM head (512 MiB in float32).
LOGITS_CHUNK_ELEMENTS = 2**27


class EvaluationCancelled(LensError):
    """``should_stop`` asked the run to stop; nothing was written."""


@dataclass
class EvaluateConfig:
    """One evaluation: the model and held-out text (``options``), and masks of the model."""

    options: ModelOptions  # model, data, tokenization, batching, device (shared with collect)
    masks: Sequence[str | Path | Mask] = ()
    allow_other_model: bool = False
    lm_eval_tasks: Sequence[str] = ()  # optional lm-eval tasks run on each variant (needs lm-eval)
    lm_eval_limit: float | None = None  # lm-eval's --limit: examples (or a fraction) per task
    lm_eval_include: Sequence[str] = ()  # folders of task YAMLs (lm-eval's --include_path)
    ci_replicates: int = DEFAULT_CI_REPLICATES  # loss_increase_ci replicates (0: no interval)
    ci_level: float = DEFAULT_CI_LEVEL
    seed: int = DEFAULT_CI_SEED  # of the loss_increase_ci bootstrap
    stream_layers: bool = False  # one decoder layer in memory at a time (core.evaluate.streaming)
    command: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_settings(cls, **settings: Any) -> EvaluateConfig:
        """From flat keyword settings (a command line, a script)."""
        options, rest = split_settings(settings)
        return cls(options=options, **rest)


@dataclass
class _Tally:
    """Running sums of one variant (the original model or one mask).

    ``sample_nll`` / ``sample_tokens`` hold each sample's summed NLL and scored
    tokens, in the order the batches ran (the same order for every variant), for
    the paired bootstrap of the loss increase (``loss_increase_ci``).
    """

    nll: float = 0.0
    tokens: int = 0
    correct: int = 0
    agree: int = 0
    sample_nll: list[float] = field(default_factory=list)
    sample_tokens: list[int] = field(default_factory=list)

    def figures(self, baseline_loss: float | None = None) -> dict[str, float]:
        loss = self.nll / self.tokens
        out = {
            "loss": loss,
            "perplexity": math.exp(loss) if loss < 700 else float("inf"),
            "top1_accuracy": self.correct / self.tokens,
        }
        if baseline_loss is not None:
            out["loss_increase"] = loss - baseline_loss
            out["top1_agreement"] = self.agree / self.tokens
        return out


def load_masks(masks: Sequence[str | Path | Mask]) -> list[Mask]:
    return [m if isinstance(m, Mask) else read_mask(m) for m in masks]


def check_masks_for_model(
    masks: Sequence[Mask],
    shape: tuple[int, int, int | None],
    model: str,
    names: Sequence[str],
    allow_other: bool,
) -> None:
    """Refuse masks that do not fit a model of ``shape`` = (MoE layers, experts, top-k) or
    that name another model (unless ``allow_other``)."""
    candidates = {model_identity(n) for n in names if n}
    num_layers, num_experts, top_k = shape
    for mask in masks:
        where = str(mask.path) if mask.path is not None else mask.name
        check_mask_fits(
            mask,
            num_layers=num_layers,
            num_experts=num_experts,
            top_k=top_k,
            where=where,
            what=model,
        )
        if not allow_other and model_identity(mask.model) not in candidates:
            raise LensError(
                f"{where}: mask is for model '{mask.model}' but --model is '{model}'; if it is "
                "the same model under another name, pass --allow-other-model"
            )


def run_evaluation(
    config: EvaluateConfig,
    progress: Callable[[CollectProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Evaluation:
    """Evaluate the original model and every mask of ``config`` on ``config.options.data``.

    Bad inputs (a mask file that is unreadable or for another model, empty
    data, a model without supported MoE layers) raise :class:`LensError` with
    one line before the model's weights are read where possible.
    """
    options = config.options
    if options.batch_size < 1:
        raise LensError(f"--batch-size must be at least 1 (got {options.batch_size})")
    options.validate()
    masks = load_masks(config.masks)
    if config.lm_eval_tasks and config.stream_layers:
        raise LensError("--lm-eval needs the whole model in memory: drop --stream-layers")
    if config.lm_eval_tasks and importlib.util.find_spec("lm_eval") is None:
        raise LensError("--lm-eval needs EleutherAI's lm-evaluation-harness: pip install lm-eval")
    samples = load_samples(
        options.data,
        text_field=options.text_field,
        split=options.split,
        dataset_config=options.dataset_config,
        num_samples=options.num_samples,
    )
    _check_masks_early(config, masks)
    preflight(options)
    if config.stream_layers:
        from core.evaluate.streaming import evaluate_streaming  # torch-side, like this runner

        return evaluate_streaming(config, masks, samples, progress, should_stop)
    _report(progress, "loading", 0, len(samples), 0, 0.0, f"loading {options.model}")
    model, tokenizer = load_model_and_tokenizer(options)
    layers = find_moe_layers(model)
    check_supported(layers, options.model)
    names = [
        options.model,
        str(Path(options.model).resolve()) if Path(options.model).exists() else "",
    ]
    names.append(str(getattr(model.config, "_name_or_path", "") or ""))
    shape = (len(layers), layers[0].num_experts, layers[0].top_k)
    check_masks_for_model(masks, shape, options.model, names, config.allow_other_model)
    keeps = [mask.as_bool() for mask in masks]

    _report(progress, "tokenizing", 0, len(samples), 0, 0.0, f"tokenizing {len(samples)} samples")
    token_ids = tokenize(tokenizer, samples, options)
    usable = [i for i, ids in enumerate(token_ids) if len(ids) >= 2]
    if not usable:
        raise LensError(
            f"{options.data}: no sample has two or more tokens, so there is no next token to predict"
        )
    lengths = [len(ids) for ids in token_ids]
    batches = plan_batches(usable, lengths, options.batch_size)
    job = _Forward(model, tokenizer)
    tallies = [_Tally() for _ in range(len(masks) + 1)]
    start = time.perf_counter()
    done = 0
    note = f"original + {len(masks)} mask{'s' if len(masks) != 1 else ''}"
    _report(progress, "evaluating", 0, len(usable), 0, 0.0, note)
    with MaskedRouting(layers, options.model) as routing:
        for batch in batches:
            if should_stop is not None and should_stop():
                raise EvaluationCancelled(
                    f"evaluation stopped after {done} of {len(usable)} samples; nothing was written"
                )
            inputs, targets, valid = job.prepare([token_ids[i] for i in batch])
            routing.use(None)
            reference = job.score(inputs, targets, valid, tallies[0], None)
            _check_calls(routing, layers, options.model)
            for keep, tally in zip(keeps, tallies[1:]):
                routing.use(keep)
                job.score(inputs, targets, valid, tally, reference)
                _check_calls(routing, layers, options.model)
            done += len(batch)
            _report(progress, "evaluating", done, len(usable), tallies[0].tokens, start, note)
        harness = _run_harness(config, model, tokenizer, routing, keeps, progress)
        routing.use(None)

    order = [i for batch in batches for i in batch]
    evaluation = _evaluation(
        config, masks, len(samples), len(usable), layers, tallies, harness, order
    )
    _report(progress, "done", done, len(usable), tallies[0].tokens, start, "")
    return evaluation


def _evaluation(
    config: EvaluateConfig,
    masks: Sequence[Mask],
    sample_count: int,
    usable: int,
    layers: Sequence[MoeLayer],
    tallies: list[_Tally],
    harness: list[dict],
    order: Sequence[int],
) -> Evaluation:
    """The results document from the variants' tallies (original first).

    ``order`` is the sample index of each tallied sample, in the order they were scored.
    """
    options = config.options
    baseline = {**tallies[0].figures(), **harness[0]}
    # Tallies hold samples in batch order (longest first); the bootstrap draws over the data's
    # own order, so the interval does not depend on --batch-size.
    in_sample_order = np.argsort(np.asarray(order), kind="stable")
    results = []
    for mask, name, tally, extra in zip(
        masks, unique_names([m.name for m in masks]), tallies[1:], harness[1:]
    ):
        figures = tally.figures(baseline["loss"])
        ci = loss_increase_interval(
            np.asarray(tally.sample_nll)[in_sample_order],
            np.asarray(tallies[0].sample_nll)[in_sample_order],
            np.asarray(tallies[0].sample_tokens)[in_sample_order],
            replicates=config.ci_replicates,
            level=config.ci_level,
            seed=config.seed,
        )
        results.append(
            MaskResult(mask=mask, name=name, extra=extra, loss_increase_ci=ci, **figures)
        )
    evaluation = Evaluation(
        model=options.model,
        data=options.data,
        dataset=dataset_label(options),
        samples=usable,
        tokens=tallies[0].tokens,
        num_layers=len(layers),
        num_experts=layers[0].num_experts,
        top_k=layers[0].top_k,
        baseline=baseline,
        masks=results,
        family=layers[0].family.name,
        max_length=options.max_length,
        extra={
            "skipped_samples": sample_count - usable,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tool_version": __version__,
            "command": config.command,
            **config.extra,
        },
    )
    return evaluation


def _check_masks_early(config: EvaluateConfig, masks: Sequence[Mask]) -> None:
    """For a local safetensors checkpoint, refuse unfitting masks before torch or any weight
    is loaded (from the config and the shard headers alone, as lens prune reads them)."""
    if not masks or not Path(config.options.model).is_dir():
        return
    try:
        ckpt = Checkpoint.open(config.options.model)
    except LensError:
        return  # a layout prune cannot read; the loaded model is checked instead
    if not ckpt.layers:
        return
    names = [
        config.options.model,
        str(ckpt.folder.resolve()),
        str(ckpt.config.get("_name_or_path", "")),
    ]
    shape = (len(ckpt.layers), ckpt.num_experts, ckpt.top_k)
    check_masks_for_model(masks, shape, config.options.model, names, config.allow_other_model)


def _run_harness(
    config: EvaluateConfig,
    model: Any,
    tokenizer: Any,
    routing: MaskedRouting,
    keeps: list,
    progress: Callable[[CollectProgress], None] | None,
) -> list[dict]:
    """lm-eval results per variant (original first), as ``{"lm_eval": {...}}`` or ``{}``."""
    if not config.lm_eval_tasks:
        return [{} for _ in range(len(keeps) + 1)]
    out = []
    for i, keep in enumerate([None, *keeps]):
        _report(progress, "lm-eval", i, len(keeps) + 1, 0, 0.0, ", ".join(config.lm_eval_tasks))
        routing.use(keep)
        results = run_lm_eval(
            model,
            tokenizer,
            config.lm_eval_tasks,
            limit=config.lm_eval_limit,
            batch_size=config.options.batch_size,
            include=config.lm_eval_include,
        )
        out.append({"lm_eval": results})
    return out


def _check_calls(routing: MaskedRouting, layers: Sequence[MoeLayer], model: str) -> None:
    missed = [layer.name for layer, calls in zip(layers, routing.calls()) if calls == 0]
    if missed:
        raise LensError(
            f"{model}: the router of {missed[0]} was never called (a fused kernel bypasses it?); "
            "masks cannot be applied in memory to this model as loaded"
        )


def _report(
    callback: Callable[[CollectProgress], None] | None,
    stage: str,
    done: int,
    total: int,
    tokens: int,
    start: float,
    message: str,
) -> None:
    if callback is None:
        return
    elapsed = time.perf_counter() - start if start else 0.0
    callback(
        CollectProgress(
            stage=stage,
            samples_done=done,
            samples_total=total,
            tokens_done=tokens,
            elapsed_s=elapsed,
            samples_per_s=done / elapsed if elapsed > 0 else 0.0,
            tokens_per_s=tokens / elapsed if elapsed > 0 else 0.0,
            message=message,
        )
    )


def prepare_batch(padder: BatchPadder, sequences: list[list[int]]) -> tuple[dict, Any, Any]:
    """Padded inputs, the next-token targets and which positions have a real target."""
    inputs, ids, mask = padder.pad(sequences)
    real = mask.bool()
    valid = real[:, :-1] & real[:, 1:]  # position t predicts token t + 1, both real
    targets = ids[:, 1:][valid]
    return inputs, targets, valid


class _Forward:
    """Pads a batch, runs the backbone, scores next-token predictions with a chunked LM head."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.backbone = backbone_of(model)
        self.head = model.get_output_embeddings()
        if self.backbone is None or self.head is None:
            raise LensError(
                f"{type(model).__name__}: cannot find its backbone and LM head to score next tokens"
            )
        self.padder = BatchPadder(self.backbone, tokenizer)

    def prepare(self, sequences: list[list[int]]) -> tuple[dict, Any, Any]:
        return prepare_batch(self.padder, sequences)

    def score(self, inputs: dict, targets: Any, valid: Any, tally: _Tally, reference: Any) -> Any:
        """Add one forward's figures to ``tally``; return the argmax at every scored position."""
        import torch  # lazy: optional dependency (the collect extra)

        try:
            with torch.inference_mode():
                hidden = self.backbone(**inputs).last_hidden_state
        except torch.OutOfMemoryError:
            batch, seq = inputs["input_ids"].shape
            raise LensError(
                f"out of memory on a batch of {batch} × {seq} tokens; "
                "re-run with a smaller --batch-size (or --max-length)"
            ) from None
        return score_hidden(self.head, hidden, targets, valid, tally, reference)


def score_hidden(
    head: Any, hidden: Any, targets: Any, valid: Any, tally: _Tally, reference: Any
) -> Any:
    """Score the backbone's last hidden states ``[B, S, H]`` with a chunked LM head.

    Adds the figures to ``tally`` and returns the argmax at every scored
    position. Shared by whole-model and layer-streamed evaluation, so both
    score exactly alike.
    """
    import torch  # lazy: optional dependency (the collect extra)

    try:
        with torch.inference_mode():
            scored = hidden[:, :-1][valid.to(hidden.device)]
            head_device = head.weight.device
            vocab = head.weight.shape[0]
            rows = max(1, LOGITS_CHUNK_ELEMENTS // max(vocab, 1))
            nll = torch.zeros((), dtype=torch.float64)
            rows_of = valid.nonzero()[:, 0].cpu()  # the sample of each scored position
            per_sample = torch.zeros(valid.shape[0], dtype=torch.float64)
            argmax = []
            for start in range(0, scored.shape[0], rows):
                chunk = scored[start : start + rows].to(head_device)
                logits = head(chunk).float()
                target = targets[start : start + rows].to(head_device)
                losses = torch.nn.functional.cross_entropy(
                    logits, target, reduction="none"
                ).double()
                nll += losses.sum().cpu()
                per_sample.index_add_(0, rows_of[start : start + rows], losses.cpu())
                argmax.append(logits.argmax(dim=-1).cpu())
    except torch.OutOfMemoryError:
        batch, seq = hidden.shape[:2]
        raise LensError(
            f"out of memory on a batch of {batch} × {seq} tokens; "
            "re-run with a smaller --batch-size (or --max-length)"
        ) from None
    top = torch.cat(argmax) if argmax else torch.zeros(0, dtype=torch.long)
    tally.nll += float(nll)
    tally.tokens += int(targets.numel())
    tally.sample_nll.extend(per_sample.tolist())
    tally.sample_tokens.extend(valid.sum(dim=1).tolist())
    tally.correct += int((top == targets).sum())
    if reference is not None:
        tally.agree += int((top == reference).sum())
    return top
