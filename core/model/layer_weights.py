"""One module's weights from a safetensors checkpoint, read straight into place.

``--stream-layers`` holds one decoder layer at a time, so the memory a layer
needs while it loads is the run's memory bound. transformers' loader builds
a fused expert tensor (``gate_up_proj`` from per-expert ``w1``/``w3`` or
``gate_proj``/``up_proj``) by reading every expert's tensors, stacking them
and concatenating the stacks: two to three copies of the layer's experts for
a moment. Here each target tensor is allocated once, in its final shape and
dtype on its device, and every checkpoint tensor is read into its slice of it
(for a float checkpoint on CPU, by the file read itself), so a layer never
needs more than itself plus one source tensor.

The names still come from transformers: its conversion mapping for the model
(:func:`transformers.conversion_mapping.get_model_conversion_mapping`) says
which checkpoint keys make which parameter, and ``rename_source_key`` applies
it. Converters other than "stack experts, then concatenate" (none of the
families we stream use one today) go through transformers' own loader.

Quantised checkpoints are decoded tensor by tensor while they are read
(:mod:`core.model.dequantize`): MXFP4 ``*_blocks``/``*_scales`` pairs and FP8
``weight``/``weight_scale_inv`` pairs appear here as the one float tensor they
stand for. torch and transformers are imported lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import LensError
from core.io.safetensors import TensorEntry

#: safetensors dtype names torch holds directly.
TORCH_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip

#: transformers' switch for loading checkpoint tensors one at a time (no thread pool).
_SEQUENTIAL = "HF_DEACTIVATE_ASYNC_LOAD"


@dataclass(frozen=True)
class Quantisation:
    """How a checkpoint's tensors are stored: ``"mxfp4"``, ``"fp8"`` (with its block) or plain."""

    method: str | None = None
    block: tuple[int, int] = (128, 128)


def quantisation_of(config: Any, model: str) -> Quantisation:
    """The checkpoint's quantisation from its config; one line for a method we cannot decode."""
    quant = getattr(config, "quantization_config", None)
    if not quant:
        return Quantisation()
    settings = quant if isinstance(quant, dict) else quant.to_dict()
    method = str(settings.get("quant_method", "unknown")).lower()
    if method == "mxfp4":
        return Quantisation("mxfp4")
    if method == "fp8":
        fmt = str(settings.get("fmt", "e4m3")).lower()
        block = settings.get("weight_block_size")
        if fmt == "e4m3" and isinstance(block, (list, tuple)) and len(block) == 2:
            return Quantisation("fp8", (int(block[0]), int(block[1])))
        raise LensError(
            f"{model}: --stream-layers reads FP8 checkpoints in e4m3 with block scales "
            f"(weight_block_size), not fmt={fmt} with weight_block_size={block}"
        )
    raise LensError(
        f"{model}: --stream-layers cannot dequantise {method} checkpoints (it reads MXFP4 and "
        "block-scaled FP8); collect without --stream-layers, or convert the checkpoint to bf16"
    )


def _read_bytes(entry: TensorEntry, offset: int = 0, count: int | None = None) -> np.ndarray:
    """``count`` bytes of ``entry`` from ``offset`` (default: all of it), by a plain file read.

    Plain reads, not a memory map: mapped pages that were touched count
    towards the process's resident memory, and over a whole checkpoint that
    would be the checkpoint's size.
    """
    count = entry.nbytes - offset if count is None else count
    raw = np.fromfile(entry.file, dtype=np.uint8, count=count, offset=entry.start + offset)
    if raw.nbytes != count:
        raise LensError(f"{entry.file}: truncated (tensor {entry.name} runs past the end)")
    return raw


def _as_torch(raw: np.ndarray, entry: TensorEntry, shape: tuple[int, ...]) -> Any:
    import torch  # lazy: optional dependency (the collect extra)

    if entry.dtype == "F8_E4M3":
        return torch.from_numpy(raw).view(torch.float8_e4m3fn).reshape(shape)
    return torch.from_numpy(raw).view(getattr(torch, TORCH_DTYPES[entry.dtype])).reshape(shape)


class Source:
    """One logical checkpoint tensor: ``shape``, and the means to read it into a tensor."""

    shape: tuple[int, ...]

    def read_into(self, dest: Any) -> None:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Any:
        """Read the whole tensor (transformers' loader materialises sources with ``t[...]``)."""
        import torch  # lazy: optional dependency (the collect extra)

        dest = torch.empty(self.shape, dtype=self.dtype())
        self.read_into(dest)
        return dest[key]

    def dtype(self) -> Any:
        import torch  # lazy: optional dependency (the collect extra)

        return torch.float32


class PlainSource(Source):
    """A float or integer tensor stored as it is used."""

    def __init__(self, entry: TensorEntry) -> None:
        if entry.dtype not in TORCH_DTYPES:
            raise LensError(
                f"{entry.file}: tensor {entry.name} is {entry.dtype} without the scales or "
                "quantization_config that say how to decode it; --stream-layers cannot read it"
            )
        self.entry = entry
        self.shape = tuple(entry.shape)

    def dtype(self) -> Any:
        import torch  # lazy: optional dependency (the collect extra)

        return getattr(torch, TORCH_DTYPES[self.entry.dtype])

    def read_into(self, dest: Any) -> None:
        entry = self.entry
        if dest.device.type == "cpu" and dest.is_contiguous() and dest.dtype == self.dtype():
            # The file read itself fills the destination: no second buffer.
            view = memoryview(dest.view(-1).view(_uint8()).numpy())
            with open(entry.file, "rb") as handle:
                handle.seek(entry.start)
                if handle.readinto(view) != entry.nbytes:
                    raise LensError(
                        f"{entry.file}: truncated (tensor {entry.name} runs past the end)"
                    )
            return
        dest.copy_(_as_torch(_read_bytes(entry), entry, self.shape))


def _uint8() -> Any:
    import torch  # lazy: optional dependency (the collect extra)

    return torch.uint8


class Mxfp4Source(Source):
    """gpt-oss's fused experts: ``[E, R, G, 16]`` blocks + ``[E, R, G]`` scales → ``[E, G·32, R]``.

    Decoded one expert at a time into the destination (transposed, as
    transformers' MXFP4 dequantisation lays ``gate_up_proj``/``down_proj`` out).
    """

    def __init__(self, blocks: TensorEntry, scales: TensorEntry) -> None:
        if len(blocks.shape) != 4 or tuple(blocks.shape[:3]) != tuple(scales.shape):
            raise LensError(
                f"{blocks.file}: MXFP4 tensor {blocks.name} {list(blocks.shape)} does not pair "
                f"with {scales.name} {list(scales.shape)} (expected [E, R, G, 16] and [E, R, G])"
            )
        self.blocks, self.scales = blocks, scales
        experts, rows, groups, _ = blocks.shape
        self.shape = (experts, groups * 32, rows)

    def read_into(self, dest: Any) -> None:
        from core.model.dequantize import mxfp4_to_float

        experts, rows, groups, width = self.blocks.shape
        block_bytes, scale_bytes = rows * groups * width, rows * groups
        for expert in range(experts):
            blocks = _as_torch(
                _read_bytes(self.blocks, expert * block_bytes, block_bytes),
                self.blocks,
                (rows, groups, width),
            )
            scales = _as_torch(
                _read_bytes(self.scales, expert * scale_bytes, scale_bytes),
                self.scales,
                (rows, groups),
            )
            dest[expert].copy_(mxfp4_to_float(blocks, scales).T)


class Fp8Source(Source):
    """A float8_e4m3fn weight and its ``weight_scale_inv`` block scales (DeepSeek-V3)."""

    def __init__(self, weight: TensorEntry, scale: TensorEntry, block: tuple[int, int]) -> None:
        if weight.dtype != "F8_E4M3":
            raise LensError(
                f"{weight.file}: tensor {weight.name} has FP8 scales but is {weight.dtype}, "
                "not F8_E4M3"
            )
        self.weight, self.scale, self.block = weight, PlainSource(scale), block
        self.shape = tuple(weight.shape)

    def read_into(self, dest: Any) -> None:
        from core.model.dequantize import fp8_block_to_float

        weight = _as_torch(_read_bytes(self.weight), self.weight, self.shape)
        scale = self.scale[...]
        dest.copy_(fp8_block_to_float(weight, scale, self.block, self.weight.name))


class CheckpointTensors:
    """Every tensor of a local safetensors checkpoint, by logical name, decoded as it is read."""

    def __init__(self, folder: Path, quantisation: Quantisation | None = None) -> None:
        from core.prune.checkpoint import _read_shards  # the one index/shard reader

        shards, _ = _read_shards(folder)
        self.entries: dict[str, TensorEntry] = {}
        for header in shards:
            self.entries.update(header.tensors)
        method = (quantisation or Quantisation()).method
        self.sources: dict[str, Any] = {}
        consumed: set[str] = set()
        if method == "mxfp4":
            for name, entry in self.entries.items():
                scales = self.entries.get(name.removesuffix("_blocks") + "_scales")
                if name.endswith("_blocks") and scales is not None:
                    self.sources[name.removesuffix("_blocks")] = (entry, scales)
                    consumed.update((name, scales.name))
        elif method == "fp8":
            assert quantisation is not None
            for name, entry in self.entries.items():
                weight = self.entries.get(name.removesuffix("_scale_inv"))
                if name.endswith(".weight_scale_inv") and weight is not None:
                    self.sources[weight.name] = (weight, entry, quantisation.block)
                    consumed.update((name, weight.name))
        for name, entry in self.entries.items():
            if name not in consumed:
                self.sources[name] = entry

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.sources if name.startswith(prefix)]

    def nbytes(self, prefix: str) -> int:
        """Bytes the checkpoint stores under ``prefix`` (quantised tensors as stored)."""
        return sum(entry.nbytes for name, entry in self.entries.items() if name.startswith(prefix))

    def source(self, name: str) -> Source:
        found = self.sources[name]
        if isinstance(found, TensorEntry):
            return PlainSource(found)
        if len(found) == 2:
            return Mxfp4Source(*found)
        return Fp8Source(*found)


class WeightLoader:
    """Loads the parameters of one part of a meta-device model (a layer, the embeddings)."""

    def __init__(
        self, model: Any, tensors: CheckpointTensors, folder: Path, device: Any, dtype: Any
    ) -> None:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming

        self.model, self.tensors, self.folder, self.device = model, tensors, folder, device
        self.dtype = dtype  # the run's; parameters the model keeps in another dtype keep theirs
        self.mapping = get_model_conversion_mapping(model)
        self.renamings = [m for m in self.mapping if isinstance(m, WeightRenaming)]
        self.converters = [m for m in self.mapping if isinstance(m, WeightConverter)]
        self.by_pattern = {p: c for c in self.converters for p in c.source_patterns}
        #: name → (shape, dtype) of every parameter and persistent buffer (the meta model's).
        self.expected = {n: (tuple(t.shape), t.dtype) for n, t in model.state_dict().items()}

    def load(self, prefix: str) -> None:
        """Materialise every tensor the checkpoint holds under ``prefix`` on ``device``."""
        import torch  # lazy: optional dependency (the collect extra)

        plan = self._plan(prefix)
        if not plan:
            raise LensError(f"{self.folder}: the checkpoint holds no tensors under {prefix!r}")
        generic: dict[str, Source] = {}
        for target, groups in plan.items():
            shape, dtype = self.expected[target]
            if None in groups:
                names = groups[None]
                if len(names) != 1:
                    raise LensError(f"{self.folder}: {', '.join(names)} all name {target}")
                dest = torch.empty(shape, dtype=dtype, device=self.device)
                source = self.tensors.source(names[0])
                self._check(names[0], source.shape, shape, target)
                source.read_into(dest)
                self._assign(target, dest)
                continue
            converter = self.by_pattern[next(iter(groups))]
            if _fusable(converter):
                self._assign(target, self._fuse(target, converter, groups))
            else:
                for names in groups.values():
                    generic.update({n: self.tensors.source(n) for n in names})
        if generic:
            self._load_generic(generic)

    def _plan(self, prefix: str) -> dict[str, dict[str | None, list[str]]]:
        """``{target parameter: {converter source pattern or None: [checkpoint names]}}``."""
        from transformers.core_model_loading import dot_natural_key, rename_source_key

        base = self.model.base_model_prefix
        plan: dict[str, dict[str | None, list[str]]] = {}
        for name in sorted(self.tensors.names(prefix), key=dot_natural_key):
            target, pattern = rename_source_key(
                name, self.renamings, self.converters, base, self.expected
            )
            if target not in self.expected and name in self.expected:
                target, pattern = rename_source_key(name, [], [], base, self.expected)
            if target in self.expected:  # anything else the model does not use (as transformers)
                plan.setdefault(target, {}).setdefault(pattern, []).append(name)
        return plan

    def _fuse(self, target: str, converter: Any, groups: dict) -> Any:
        """Experts' tensors stacked along dim 0 (and concatenated), each read into its slice."""
        import torch  # lazy: optional dependency (the collect extra)

        shape, dtype = self.expected[target]
        operations = converter.operations
        along = operations[1].dim - 1 if len(operations) == 2 else None  # within one expert
        dest = torch.empty(shape, dtype=dtype, device=self.device)
        offset = 0
        for pattern in converter.source_patterns:
            names = groups.get(pattern, [])
            if len(names) != shape[0]:
                raise LensError(
                    f"{self.folder}: {target} stacks {shape[0]} experts, but the checkpoint "
                    f"holds {len(names)} tensors matching {pattern}"
                )
            width = 0
            for expert, name in enumerate(names):
                source = self.tensors.source(name)
                part = dest[expert]
                if along is not None:
                    width = source.shape[along] if len(source.shape) > along else 0
                    part = part.narrow(along, offset, width)
                self._check(name, source.shape, tuple(part.shape), target)
                source.read_into(part)
            offset += width
        if along is not None and offset != shape[along + 1]:
            raise LensError(
                f"{self.folder}: the tensors fused into {target} give {offset} of its "
                f"{shape[along + 1]} columns"
            )
        return dest

    def _check(self, name: str, have: tuple, want: tuple, target: str) -> None:
        if tuple(have) != tuple(want):
            raise LensError(
                f"{self.folder}: tensor {name} has shape {list(have)}, but {target} needs "
                f"{list(want)} there (a checkpoint of another configuration?)"
            )

    def _assign(self, target: str, tensor: Any) -> None:
        import torch  # lazy: optional dependency (the collect extra)

        path, _, leaf = target.rpartition(".")
        owner = self.model.get_submodule(path) if path else self.model
        if leaf in owner._buffers:
            setattr(owner, leaf, tensor)
        else:
            setattr(owner, leaf, torch.nn.Parameter(tensor, requires_grad=False))

    def _load_generic(self, state: dict[str, Source]) -> None:
        """transformers' own loader, for a conversion we do not fuse in place."""
        from transformers.core_model_loading import convert_and_load_state_dict_in_model
        from transformers.modeling_utils import LoadStateDictConfig

        from core.model.loading import _quiet_progress_bars

        config = LoadStateDictConfig(
            dtype=self.dtype, weight_mapping=self.mapping, device_map={"": self.device}
        )
        previous = os.environ.get(_SEQUENTIAL)
        os.environ[_SEQUENTIAL] = "1"  # its thread pool would read every tensor at once
        try:
            with _quiet_progress_bars():
                convert_and_load_state_dict_in_model(self.model, state, config)
        finally:
            if previous is None:
                os.environ.pop(_SEQUENTIAL, None)
            else:
                os.environ[_SEQUENTIAL] = previous


def _fusable(converter: Any) -> bool:
    """Is ``converter`` "stack the experts along dim 0, then maybe concatenate within one"?"""
    from transformers.core_model_loading import Concatenate, MergeModulelist

    operations = converter.operations
    if len(converter.target_patterns) != 1 or converter.quantization_operation is not None:
        return False
    if not operations or type(operations[0]) is not MergeModulelist or operations[0].dim != 0:
        return False
    if len(operations) == 1:
        return True
    return len(operations) == 2 and type(operations[1]) is Concatenate and operations[1].dim >= 1
