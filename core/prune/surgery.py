"""``lens prune``: write a checkpoint that keeps only a mask's experts.

For every MoE layer, the router's weight rows (and bias, and DeepSeek's
``e_score_correction_bias``) and every per-expert tensor are sliced to the
kept experts, in ascending id order: fused ``[E, …]`` tensors by dim 0
(including GPT-OSS's biases and MXFP4 blocks and scales), per-expert tensors
by renaming ``experts.{old}.`` to ``experts.{new}.``. The config's expert count
becomes the number kept; everything else (attention, embeddings, shared
experts, the tokenizer, the generation config) is copied unchanged. Families
with a layout (:mod:`core.families.layouts`) say instead which rows each
tensor keeps, which masks their config can express, and the new counts
(LongCat-Flash: routed and zero-computation; Zaya: routed, its skip row last;
Doge: a square sub-grid of its product keys).

Weights are processed shard by shard and tensor by tensor as byte ranges
(:mod:`core.io.safetensors`): no tensor is decoded and memory stays at
one copy buffer whatever the checkpoint's size. Each output shard is written
atomically, and the whole folder appears under its final name only when
complete.

Masks that keep different numbers of experts per layer cannot be expressed
in transformers' configs (one expert count for all layers). For families
whose router has a bias (GPT-OSS; DeepSeek-V4, whose checkpoints save the
correction bias as the router's ``bias``), short layers are padded to the
largest count with zero experts whose router bias is the most negative finite
value, so they are never selected; other families refuse such masks.
DeepSeek-V4's hash-routed layers must be kept whole (their token-id table names
experts by id) and are then copied unchanged.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from core import __version__
from core.errors import LensError
from core.families import for_model_type
from core.families.base import FamilyAdapter
from core.formats.mask import Mask, check_mask_fits, read_mask
from core.io.atomic import atomic_write_text
from core.io.safetensors import (
    OutTensor,
    Piece,
    TensorEntry,
    copy_piece,
    fill_piece,
    rows_pieces,
    write_safetensors,
)
from core.model_names import model_identity
from core.prune.checkpoint import (
    COPIED_FILES,
    Checkpoint,
    MoeLayer,
    moe_config,
    moe_config_key,
    read_config,
    resolve_model,
)

#: The most negative finite value of each float dtype, little-endian: the router bias of padding.
_MOST_NEGATIVE = {
    "F64": struct.pack("<d", -1.7976931348623157e308),
    "F32": struct.pack("<f", -3.4028234663852886e38),
    "F16": struct.pack("<e", -65504.0),
    "BF16": bytes([0x7F, 0xFF]),  # 0xFF7F = -3.3895e38
}
PROVENANCE_FILE = "lens-prune.json"


class PruneCancelled(LensError):
    """``should_stop`` asked to stop; nothing was left at ``out``."""


@dataclass(frozen=True)
class PruneProgress:
    shard: int  # 1-based index of the shard being written
    shards: int
    name: str
    bytes_done: int  # over all shards
    bytes_total: int


@dataclass(frozen=True)
class PruneResult:
    out: Path
    model_type: str
    num_experts_before: int
    num_experts_after: int
    kept_per_layer: list[int]
    padded_per_layer: list[int]
    top_k_before: int | None
    top_k_after: int | None
    files: list[str]
    bytes_in: int
    bytes_out: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "out": str(self.out),
            "model_type": self.model_type,
            "num_experts_before": self.num_experts_before,
            "num_experts_after": self.num_experts_after,
            "kept_per_layer": self.kept_per_layer,
            "padded_per_layer": self.padded_per_layer,
            "top_k_before": self.top_k_before,
            "top_k_after": self.top_k_after,
            "files": self.files,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "notes": self.notes,
        }


def prune_checkpoint(
    model: str | Path,
    mask: Mask | str | Path,
    out: str | Path,
    *,
    allow_other_model: bool = False,
    clamp_top_k: bool = False,
    progress: Callable[[PruneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PruneResult:
    """Write the pruned checkpoint of ``model`` under ``mask`` to the new folder ``out``.

    ``clamp_top_k`` accepts layers keeping fewer than top-k experts and lowers
    top-k to the smallest layer's count; without it such masks are refused.
    ``allow_other_model`` skips the check that the mask names this model
    (layer and expert counts are always checked). ``progress`` is called from
    the calling thread as bytes are written; ``should_stop`` is polled as often
    and, when true, stops with :class:`PruneCancelled`, leaving nothing at ``out``.
    """
    if not isinstance(mask, Mask):
        mask = read_mask(mask)
    where = str(mask.path) if mask.path is not None else "mask"
    # The family first: a model type pruning does not know is refused as such, not as a
    # checkpoint whose tensor names were not understood.
    family = for_model_type(read_config(model).get("model_type"), str(resolve_model(model)))
    ckpt = Checkpoint.open(model)
    prune = family.prune
    assert prune is not None  # for_model_type refuses families pruning does not support
    out = Path(out)
    _check_out(out, ckpt.folder)
    check_mask_fits(
        mask,
        num_layers=len(ckpt.layers),
        num_experts=ckpt.num_experts,
        top_k=None if clamp_top_k else ckpt.top_k,
        where=where,
        what=str(model),
    )
    if not allow_other_model:
        _check_model_name(mask, model, ckpt, where)
    _check_hash_routed_layers(ckpt, family, mask, where)
    kept = mask.kept_per_layer
    width = max(kept)
    if ckpt.layout is not None:  # LongCat, Zaya, Doge: which masks their config can express
        ckpt.layout.check(ckpt.config, ckpt.routed_experts, mask.layers, where)
    if min(kept) != width and not prune.router_bias:
        raise LensError(
            f"{where}: layers keep different numbers of experts ({min(kept)} to {width}); "
            f"{family.label} configs hold one expert count for every layer and its router has no "
            "bias to make padding experts unreachable, so make a mask with the same r in every "
            "layer (lens mask --r)"
        )
    top_k_after = ckpt.top_k
    if ckpt.top_k is not None and clamp_top_k:
        top_k_after = min(ckpt.top_k, min(kept))
    config = _new_config(ckpt, family, mask, width, top_k_after, where)
    notes = []
    if ckpt.beyond:
        notes.append(
            f"dropped {len(ckpt.beyond)} tensors of layers beyond num_hidden_layers "
            "(multi-token prediction, not loaded by transformers)"
        )
    if prune.untouched:
        notes.append(f"{prune.untouched} kept as is")
    if top_k_after != ckpt.top_k:
        notes.append(f"top-k lowered from {ckpt.top_k} to {top_k_after}")
    if width != min(kept):
        notes.append(f"short layers padded to {width} experts that the router never selects")

    shards = _plan(ckpt, mask, width, where)
    single = len(shards) == 1 and not ckpt.has_index
    names = (
        ["model.safetensors"]
        if single
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    total = sum(t.nbytes for _, tensors in shards for t in tensors)
    remove_stale_staging(out)
    staging = _make_staging(out)
    try:
        done = 0
        bytes_out = 0
        for number, ((metadata, tensors), name) in enumerate(zip(shards, names), start=1):

            def on_bytes(n: int, number: int = number, name: str = name) -> None:
                nonlocal done
                done += n
                if should_stop is not None and should_stop():
                    raise PruneCancelled(f"{out}: pruning cancelled; nothing was written")
                if progress:
                    progress(PruneProgress(number, len(names), name, done, total))

            on_bytes(0)
            bytes_out += write_safetensors(staging / name, tensors, metadata, on_bytes)
            _test_pause_after_shard()
        if not single:
            weight_map = {
                t.name: name for (_, tensors), name in zip(shards, names) for t in tensors
            }
            index = {
                "metadata": {"total_size": total},
                "weight_map": dict(sorted(weight_map.items())),
            }
            _write_json(staging / "model.safetensors.index.json", index)
        _write_json(staging / "config.json", config)
        copied = _copy_support_files(ckpt.folder, staging)
        result = PruneResult(
            out=out,
            model_type=ckpt.model_type,
            num_experts_before=ckpt.num_experts,
            num_experts_after=width,
            kept_per_layer=kept,
            padded_per_layer=[width - k for k in kept],
            top_k_before=ckpt.top_k,
            top_k_after=top_k_after,
            files=sorted(
                [*names, *copied, "config.json", PROVENANCE_FILE]
                + ([] if single else ["model.safetensors.index.json"])
            ),
            bytes_in=ckpt.weight_bytes,
            bytes_out=bytes_out,
            notes=notes,
        )
        _write_json(
            staging / PROVENANCE_FILE,
            {
                "format": "expert-calibration-lens/prune",
                "source_model": str(model),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "tool_version": __version__,
                "mask": mask.to_json(),
                "result": {k: v for k, v in result.to_json().items() if k != "out"},
            },
        )
        (staging / STAGING_MARKER).unlink()
        if out.exists():
            out.rmdir()  # _check_out allowed only an empty folder
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


# --------------------------------------------------------------------------- staging

#: Written first into every staging folder: a later run deletes a leftover
#: ``.OUT.*.partial`` folder only when it holds this file, i.e. one it can prove
#: a killed ``lens prune`` made.
STAGING_MARKER = ".lens-prune-staging"


def _make_staging(out: Path) -> Path:
    """A hidden folder beside ``out`` that becomes ``out`` by one rename when complete.

    ``mkdtemp`` makes it 0700; the pruned checkpoint is meant to be shared like
    any folder the user creates, so it gets the umask's usual mode instead.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    (staging / STAGING_MARKER).write_text(f"{os.getpid()}\n", encoding="utf-8")
    return staging


def remove_stale_staging(out: Path) -> list[Path]:
    """Delete staging folders of earlier, killed runs for ``out``; returns what was removed.

    Only hidden ``.OUT.*.partial`` folders holding :data:`STAGING_MARKER` go:
    the name alone could be the user's, the marker proves ``lens prune`` made it.
    """
    removed = []
    for candidate in out.parent.glob(f".{glob.escape(out.name)}.*.partial"):
        if candidate.is_symlink() or not (candidate / STAGING_MARKER).is_file():
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def _test_pause_after_shard() -> None:
    """Kill tests set ``LENS_TEST_PAUSE_AFTER_SHARD`` to hold a run mid-write deterministically."""
    seconds = os.environ.get("LENS_TEST_PAUSE_AFTER_SHARD")
    if seconds:
        import sys
        import time

        print("lens-test: shard written", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


# --------------------------------------------------------------------------- checks


def _check_out(out: Path, source: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LensError(f"{out}: already exists and is not an empty folder; choose a new --out")
    resolved = out.resolve()
    if resolved == source.resolve() or source.resolve() in resolved.parents:
        raise LensError(f"{out}: is inside the source model folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)


def _check_model_name(mask: Mask, model: str | Path, ckpt: Checkpoint, where: str) -> None:
    candidates = {
        model_identity(str(model)),
        model_identity(str(ckpt.folder.resolve())),
        model_identity(str(ckpt.config.get("_name_or_path", ""))),
    }
    if model_identity(mask.model) not in candidates:
        raise LensError(
            f"{where}: mask is for model '{mask.model}' but --model is '{model}'; if it is the "
            "same model under another name, pass --allow-other-model"
        )


def _check_hash_routed_layers(
    ckpt: Checkpoint, family: FamilyAdapter, mask: Mask, where: str
) -> None:
    """Refuse a mask dropping experts in a hash-routed layer (DeepSeek-V4), naming the layer.

    Such a layer's router holds a token-id table (the adapter's ``hash_table_attr``,
    saved beside the router weight) naming experts by their original ids, so only a
    layer kept whole stays what the model computes; it is then copied unchanged.
    """
    for number in ckpt.hash_routed_layers(family):
        layer, ids = ckpt.layers[number], mask.layers[number]
        if len(ids) != ckpt.num_experts:
            refusal = family.hash_layer_refusal(
                f"MoE layer {number} (decoder layer {layer.index})", len(ids), ckpt.num_experts
            )
            raise LensError(f"{where}: {refusal}")


# --------------------------------------------------------------------------- config


def _new_config(
    ckpt: Checkpoint, family: FamilyAdapter, mask: Mask, width: int, top_k: int | None, where: str
) -> dict:
    prune = family.prune
    assert prune is not None
    config = dict(ckpt.config)
    sub = moe_config_key(config)
    moe = config
    if sub is not None:  # Llama-4's text_config, DBRX's ffn_config hold the MoE keys
        moe = config[sub] = dict(moe_config(config))
    keys = [k for k in prune.expert_count_keys if isinstance(moe.get(k), int)]
    if not keys:
        raise LensError(
            f"{ckpt.folder}/config.json: no expert count ({', '.join(prune.expert_count_keys)})"
        )
    count, extra = width, {}
    if ckpt.layout is not None:  # the routed count, and LongCat's zero-computation count
        count, extra = ckpt.layout.new_counts(ckpt.config, ckpt.routed_experts, mask.layers)
    for key in keys:
        moe[key] = count
    moe.update(extra)
    if top_k is not None:
        moe[prune.top_k_key] = top_k
    if prune.grouped_routing:
        moe.update(_grouping(ckpt, mask, top_k, where))
    if ckpt.beyond and isinstance(config.get("num_nextn_predict_layers"), int):
        config["num_nextn_predict_layers"] = 0
    return config


def _grouping(ckpt: Checkpoint, mask: Mask, top_k: int | None, where: str) -> dict:
    """Keep DeepSeek-V3's group-limited routing identical after pruning, or refuse.

    The router picks ``topk_group`` of ``n_group`` contiguous groups by the sum
    of each group's two best scores, then top-k within them. If every group is
    always picked (``topk_group >= n_group``), grouping does nothing and the
    pruned model uses one group. Otherwise each layer must keep the same number
    c of experts in every original group (so that group j of the pruned layer is
    exactly the kept experts of group j), with c ≥ 2 and ``topk_group`` · c ≥ top-k.
    """
    if "n_group" in ckpt.config and ckpt.config["n_group"] is None:
        return {}  # a router without groups (A.X K2-Light): nothing to keep consistent
    n_group = int(ckpt.config.get("n_group") or 1)
    topk_group = int(ckpt.config.get("topk_group") or 1)
    small = min(mask.kept_per_layer)
    if small < 2:
        raise LensError(
            f"{where}: a layer keeps {small} expert; DeepSeek-V3's router needs at least 2 per group"
        )
    if topk_group >= n_group:
        return {"n_group": 1, "topk_group": 1}
    size = ckpt.num_experts // n_group
    for layer, ids in enumerate(mask.layers):
        counts = [sum(1 for e in ids if e // size == g) for g in range(n_group)]
        c = counts[0]
        if any(n != c for n in counts) or c < 2 or (top_k is not None and topk_group * c < top_k):
            raise LensError(
                f"{where}: DeepSeek-V3 routes within {n_group} groups of {size} experts "
                f"(topk_group={topk_group}); layer {layer} keeps {counts} experts per group, but "
                "every group must keep the same number (at least 2, and topk_group × that ≥ "
                f"top-k) for routing to stay the same: make one with lens mask --groups {n_group}"
            )
    return {}


# --------------------------------------------------------------------------- the tensor plan


def _plan(
    ckpt: Checkpoint, mask: Mask, width: int, where: str
) -> list[tuple[dict, list[OutTensor]]]:
    """Per input shard: its metadata and the output tensors made from its tensors."""
    replaced: dict[str, list[OutTensor]] = {}
    for layer, ids in zip(ckpt.layers, mask.layers):
        replaced.update(_layer_plan(layer, ids, width, where, _rows_of(ckpt, ids)))
    dropped = set(ckpt.beyond)
    plan = []
    for shard in ckpt.shards:
        tensors: list[OutTensor] = []
        for name, entry in shard.tensors.items():
            if name in dropped:
                continue
            if name in replaced:
                tensors.extend(replaced[name])
            else:
                tensors.append(OutTensor(name, entry.dtype, entry.shape, (copy_piece(entry),)))
        if tensors:
            plan.append(({**shard.metadata, "format": shard.metadata.get("format", "pt")}, tensors))
    return plan


#: ``rows(entry, router) -> the rows of entry kept``, for one layer's kept ids
RowsOf = Callable[[TensorEntry, bool], list[int]]


def _rows_of(ckpt: Checkpoint, ids: list[int]) -> RowsOf | None:
    """The family layout's rows for a layer keeping ``ids``; ``None``: one row per expert."""
    layout = ckpt.layout
    if layout is None:
        return None
    return lambda entry, router: layout.rows(
        ckpt.config, ckpt.routed_experts, entry.shape[0], ids, router
    )


def _layer_plan(
    layer: MoeLayer, ids: list[int], width: int, where: str, rows_of: RowsOf | None = None
) -> dict[str, list[OutTensor]]:
    pad = width - len(ids)
    plan: dict[str, list[OutTensor]] = {}
    router_bias = layer.router.get("bias")
    if pad and router_bias is None:  # zero padding experts would be selectable
        raise LensError(
            f"{where}: layer {layer.index} keeps {len(ids)} of {width} experts but its router has "
            "no bias to make padding experts unreachable; keep the same number in every layer"
        )
    routers = {entry.name for entry in layer.router.values()}
    for entry in [*layer.router.values(), *layer.fused.values()]:
        # Inkling: the router weight's trailing rows score the shared experts; they stay last.
        tail = layer.router_tail if entry is layer.router.get("weight") else 0
        assert not (tail and pad), "uneven masks are refused for routers without a bias"
        rows = entry.shape[0]
        kept = [*ids, *range(rows - tail, rows)]
        if rows_of is not None:
            assert not pad, "uneven masks are refused for families with a layout"
            kept = rows_of(entry, entry.name in routers)
        pieces = rows_pieces(entry, kept)
        if pad and entry is router_bias:
            pieces.append(fill_piece(_most_negative(entry, where), pad))
        elif pad:
            pieces.append(fill_piece(b"\0", pad * entry.row_bytes()))
        shape = (len(kept) + pad, *entry.shape[1:])
        if entry.name in layer.leading_one:
            shape = (1, *shape)
        if entry.name in layer.stacked:  # DBRX: [E, n, H] read, [E·n, H] written
            shape = (width * entry.shape[1], *entry.shape[2:])
        plan[entry.name] = [OutTensor(entry.name, entry.dtype, shape, tuple(pieces))]
    if layer.per_expert:
        for tensors in layer.per_expert.values():
            for entry in tensors.values():
                plan[entry.name] = []  # dropped unless kept below
        for new, old in enumerate(ids):
            # a layout's identity experts may have no tensors of their own
            for entry in layer.per_expert.get(old, {}).values():
                name = entry.name.replace(f".experts.{old}.", f".experts.{new}.", 1)
                plan[entry.name].append(
                    OutTensor(name, entry.dtype, entry.shape, (copy_piece(entry),))
                )
        for new in range(len(ids), width):
            for entry in layer.per_expert[ids[0]].values():
                name = entry.name.replace(f".experts.{ids[0]}.", f".experts.{new}.", 1)
                zeros: tuple[Piece, ...] = (fill_piece(b"\0", entry.nbytes),)
                plan[entry.name].append(OutTensor(name, entry.dtype, entry.shape, zeros))
    return plan


def _most_negative(entry: TensorEntry, where: str) -> bytes:
    value = _MOST_NEGATIVE.get(entry.dtype)
    if value is None:
        raise LensError(
            f"{where}: cannot pad {entry.name}: router bias dtype {entry.dtype} is not a float type"
        )
    return value


# --------------------------------------------------------------------------- files


def _copy_support_files(source: Path, dest: Path) -> list[str]:
    copied = []
    for path in sorted(source.iterdir()):
        if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in COPIED_FILES):
            shutil.copyfile(path, dest / path.name)
            copied.append(path.name)
    return copied


def _write_json(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
