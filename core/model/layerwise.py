"""A model run one decoder layer at a time, with only that layer's weights in memory.

Calibration statistics need only each MoE block's inputs, so a checkpoint
larger than memory can still be profiled: build the model's skeleton on the
meta device (no weights), load the input embeddings, then bring one decoder
layer at a time from the checkpoint's safetensors shards onto the device,
run every batch through it and send it back to ``meta``.

Calling a decoder layer alone needs exactly the keyword arguments the
model's own forward would give it (attention masks per layer type, rotary
position embeddings, cache off). Rather than rebuild them per family, we ask
the model: its ``layers`` list is swapped for stand-ins that record what each
layer is called with and stop the forward there (:meth:`LayerwiseModel.layer_call`).
The masks are therefore built by transformers' own mask helpers, sliding
windows and all, and a streamed layer sees bit for bit what it would see in a
whole-model forward.

Weights are read by name prefix through :mod:`core.io.safetensors` and loaded
through transformers' own weight conversion (per-expert checkpoint tensors
fused into the module's ``gate_up_proj`` exactly as ``from_pretrained`` does).
torch and transformers are imported lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import LensError
from core.families.layers import MoeLayer, find_moe_layers
from core.io.safetensors import TensorEntry
from core.model.batching import backbone_of
from core.model.loading import load_model_config, remote_code, resolve_device
from core.model.options import ModelOptions


def release_freed_memory() -> None:
    """Ask glibc to return freed heap pages to the system (a no-op elsewhere).

    Without it, the allocator keeps a freed layer's pages for reuse, and
    fragmentation across layers of different tensor shapes made a streamed
    run's resident memory creep up by ~10 MB per layer of a 25 MB-layer model.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


#: transformers' switch for loading checkpoint tensors one at a time (no thread pool).
_SEQUENTIAL = "HF_DEACTIVATE_ASYNC_LOAD"


class _Stop(Exception):
    """Raised by a stand-in layer to end the model's forward once it has what it needs."""


@dataclass
class LayerCall:
    """How the model calls one decoder layer: positional args with the hidden states first."""

    args: tuple
    kwargs: dict

    def run(self, layer: Any, hidden: Any) -> Any:
        if self.args:
            out = layer(hidden, *self.args[1:], **self.kwargs)
        else:
            out = layer(**{**self.kwargs, "hidden_states": hidden})
        return out[0] if isinstance(out, tuple) else out

    def hidden(self) -> Any:
        return self.args[0] if self.args else self.kwargs["hidden_states"]


def _stand_in_class() -> type:
    import torch  # lazy: optional dependency (the collect extra)

    class StandIn(torch.nn.Module):
        """Replaces decoder layer ``index``: records its call, passes hidden states through."""

        def __init__(self, wrapped: Any, index: int, recorder: LayerwiseModel) -> None:
            super().__init__()
            object.__setattr__(self, "_wrapped", wrapped)  # not a submodule: stays out of state
            self.index = index
            object.__setattr__(self, "_recorder", recorder)

        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                # The model's loop may read layer attributes (attention_type, layer_type …).
                return getattr(object.__getattribute__(self, "_wrapped"), name)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            recorder = object.__getattribute__(self, "_recorder")
            call = LayerCall(args, kwargs)
            recorder._calls[self.index] = call
            if self.index >= recorder._stop_at:
                raise _Stop
            return call.hidden()

    return StandIn


#: safetensors dtype names torch can hold directly (quantised checkpoints are refused earlier).
_TORCH_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip


class CheckpointTensors:
    """Every tensor of a local safetensors checkpoint, read by name prefix.

    Tensors are read with plain file reads, not kept memory-mapped: mapped
    pages that were touched count towards the process's resident memory, and
    over a whole checkpoint that would be the checkpoint's size.
    """

    def __init__(self, folder: Path) -> None:
        from core.prune.checkpoint import _read_shards  # the one index/shard reader

        shards, _ = _read_shards(folder)
        self.entries: dict[str, TensorEntry] = {}
        for header in shards:
            self.entries.update(header.tensors)

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.entries if name.startswith(prefix)]

    def nbytes(self, prefix: str) -> int:
        return sum(self.entries[name].nbytes for name in self.names(prefix))

    def load(self, prefix: str) -> dict[str, Any]:
        """``{name: lazy tensor}`` for every tensor under ``prefix``; read when indexed."""
        loaded = {}
        for name in self.names(prefix):
            entry = self.entries[name]
            if entry.dtype not in _TORCH_DTYPES:
                raise LensError(
                    f"{entry.file}: tensor {name} is {entry.dtype}, which --stream-layers "
                    "cannot read (quantised checkpoints are not streamed yet)"
                )
            loaded[name] = _LazyTensor(entry)
        return loaded


class _LazyTensor:
    """A checkpoint tensor read from disk only when transformers' loader indexes it.

    transformers materialises checkpoint slices with ``tensor[...]``; reading
    here, one source tensor at a time, means a layer's raw checkpoint tensors
    and their fused copies are never all in memory at once.
    """

    def __init__(self, entry: TensorEntry) -> None:
        self.entry = entry

    def __getitem__(self, key: Any) -> Any:
        import torch  # lazy: optional dependency (the collect extra)

        entry = self.entry
        raw = np.fromfile(entry.file, dtype=np.uint8, count=entry.nbytes, offset=entry.start)
        if raw.nbytes != entry.nbytes:
            raise LensError(f"{entry.file}: truncated (tensor {entry.name} runs past the end)")
        tensor = torch.from_numpy(raw).view(getattr(torch, _TORCH_DTYPES[entry.dtype]))
        return tensor.reshape(entry.shape)[key]


class LayerwiseModel:
    """The model's skeleton plus the means to load, run and free one decoder layer."""

    def __init__(self, options: ModelOptions) -> None:
        import torch  # lazy: optional dependency (the collect extra)
        from transformers import AutoModelForCausalLM

        if options.device_map:
            raise LensError("--stream-layers places one layer at a time: drop --device-map")
        self.folder = Path(options.model)
        if not self.folder.is_dir():
            raise LensError(
                f"{options.model}: --stream-layers reads the checkpoint's safetensors shards and "
                "needs a local model folder (download it first)"
            )
        config = load_model_config(options)
        quant = getattr(config, "quantization_config", None)
        if quant:
            method = quant.get("quant_method") if isinstance(quant, dict) else quant
            raise LensError(
                f"{options.model}: --stream-layers does not dequantise {method} checkpoints yet; "
                "collect without --stream-layers, or convert the checkpoint to bf16 first"
            )
        self.device = resolve_device(options.device)
        if options.dtype == "auto":
            dtype = getattr(config, "dtype", None) or torch.float32
            dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        else:
            dtype = getattr(torch, options.dtype)
        self.dtype = dtype
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, **remote_code(options))
        model.eval()
        model.requires_grad_(False)
        self.model = model
        self.backbone = backbone_of(model) or model
        self.moe_layers = find_moe_layers(model)
        family = self.moe_layers[0].family
        if family.stream_refusal:
            raise LensError(
                f"{family.label}: cannot be streamed layer by layer ({family.stream_refusal})"
            )
        self.layers_attr = family.decoder_layers_attr
        inner = getattr(model, "model", None)  # Llama-4's prefix names no attribute
        if not hasattr(self.backbone, self.layers_attr) and hasattr(inner, self.layers_attr):
            self.backbone = inner
        self.layers = getattr(self.backbone, self.layers_attr, None)
        if self.layers is None:
            raise LensError(
                f"{type(model).__name__}: --stream-layers found no list of decoder layers "
                f"(looked for the backbone's '{self.layers_attr}')"
            )
        names = {id(module): name for name, module in model.named_modules()}
        self.layer_names = [names[id(layer)] for layer in self.layers]
        self.moe_of_layer: dict[int, MoeLayer] = {}
        for moe in self.moe_layers:
            owner = [i for i, n in enumerate(self.layer_names) if moe.name.startswith(n + ".")]
            if len(owner) != 1:
                raise LensError(f"{moe.name}: is not inside one decoder layer; cannot stream it")
            self.moe_of_layer[owner[0]] = moe
        self.last_layer = max(self.moe_of_layer)
        self.tensors = CheckpointTensors(self.folder)
        from transformers.conversion_mapping import get_model_conversion_mapping

        self._mapping = get_model_conversion_mapping(model)
        self._calls: dict[int, LayerCall] = {}
        self._stop_at = 0
        stand_in = _stand_in_class()
        self._real_layers = self.layers
        self._stand_ins = torch.nn.ModuleList(
            [stand_in(layer, i, self) for i, layer in enumerate(self.layers)]
        )
        self._embedding_name = names[id(self.backbone.get_input_embeddings())]

    # ------------------------------------------------------------------ weights

    def layer_bytes(self, index: int) -> int:
        """Checkpoint bytes of decoder layer ``index`` (one layer's weights, for budgets)."""
        return self.tensors.nbytes(self.layer_names[index] + ".")

    def _load(self, module: Any, prefix: str) -> None:
        """Materialise ``module``'s parameters from the checkpoint tensors under ``prefix``."""
        import torch  # lazy: optional dependency (the collect extra)
        from transformers.core_model_loading import convert_and_load_state_dict_in_model
        from transformers.modeling_utils import LoadStateDictConfig

        state = self.tensors.load(prefix)
        if not state:
            raise LensError(f"{self.folder}: the checkpoint holds no tensors under {prefix!r}")
        config = LoadStateDictConfig(
            dtype=self.dtype, weight_mapping=self._mapping, device_map={"": self.device}
        )
        from core.model.loading import _quiet_progress_bars

        # Sequential loading: the loader's thread pool would read every tensor at once.
        previous = os.environ.get(_SEQUENTIAL)
        os.environ[_SEQUENTIAL] = "1"
        try:
            with _quiet_progress_bars():
                convert_and_load_state_dict_in_model(self.model, state, config)
        finally:
            if previous is None:
                os.environ.pop(_SEQUENTIAL, None)
            else:
                os.environ[_SEQUENTIAL] = previous
        left = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
        if left:
            raise LensError(
                f"{self.folder}: the checkpoint lacks {prefix}{left[0]} "
                f"({len(left)} tensors of {prefix.rstrip('.')} not found)"
            )
        module.to(torch.device(self.device))

    def load_layer(self, index: int) -> Any:
        layer = self._real_layers[index]
        self._load(layer, self.layer_names[index] + ".")
        release_freed_memory()  # the checkpoint tensors the fused weights were built from
        return layer

    def free(self, module: Any) -> None:
        """Send a module's weights back to the meta device and their memory back to the system."""
        module.to("meta")
        release_freed_memory()

    def load_embeddings(self) -> None:
        """The input embeddings, for :meth:`embed`."""
        self._load(self.backbone.get_input_embeddings(), self._embedding_name + ".")

    def prepare(self) -> None:
        """Build the rotary module (its buffers are computed, not stored); check nothing else is needed."""
        import torch  # lazy: optional dependency (the collect extra)

        rotary = getattr(self.backbone, "rotary_emb", None)
        if rotary is not None:
            with torch.device(self.device):
                fresh = type(rotary)(config=rotary.config)
            self.backbone.rotary_emb = fresh
        skip = {id(self.layers), id(self.backbone.get_input_embeddings()), id(rotary)}
        for name, child in self.backbone.named_children():
            if id(child) in skip or name in ("norm", "final_layernorm", "ln_f"):
                continue  # the final norm runs after the last layer; collection stops before
            own = (*child.parameters(), *child.buffers())
            if any(t.is_meta for t in own):
                raise LensError(
                    f"{type(self.model).__name__}: --stream-layers cannot prepare {name} "
                    "(a module outside the decoder layers that it does not know)"
                )

    def load_head(self) -> tuple[Any, Any]:
        """``(final_norm, lm_head)`` with their weights, for scoring after the last layer.

        A checkpoint with tied embeddings stores no ``lm_head`` weight: the
        head then reads the input embeddings' weight, as the loaded model would.
        """
        names = {id(module): name for name, module in self.model.named_modules()}
        norm = getattr(self.backbone, "norm", None)
        head = self.model.get_output_embeddings()
        if norm is None or head is None:
            raise LensError(
                f"{type(self.model).__name__}: --stream-layers cannot find the final norm and "
                "LM head to score next tokens"
            )
        self._load(norm, names[id(norm)] + ".")
        head_name = names[id(head)]
        if self.tensors.names(head_name + "."):
            self._load(head, head_name + ".")
        else:
            self.load_embeddings()
            head.weight = self.backbone.get_input_embeddings().weight
        return norm, head

    def free_embeddings(self) -> None:
        self.free(self.backbone.get_input_embeddings())

    # ------------------------------------------------------------------ calls

    def _forward(self, inputs: dict[str, Any], stop_at: int) -> None:
        import torch  # lazy: optional dependency (the collect extra)

        attr = self.layers_attr
        self._calls = {}
        self._stop_at = stop_at
        setattr(self.backbone, attr, self._stand_ins)
        try:
            with torch.inference_mode():
                self.backbone(**inputs)
        except _Stop:
            pass
        finally:
            setattr(self.backbone, attr, self._real_layers)

    def embed(self, inputs: dict[str, Any]) -> Any:
        """Hidden states entering decoder layer 0 (embeddings loaded): ``[B, S, H]``."""
        self._forward(inputs, 0)
        return self._calls[0].hidden()

    def layer_calls(self, inputs: dict[str, Any], last: int) -> dict[int, LayerCall]:
        """How the model calls layers ``0..last`` for this batch (hidden states are dummies).

        ``inputs`` are the padded batch's keyword arguments; ``input_ids`` is
        replaced by zero ``inputs_embeds`` of the same shape, so no embedding
        weights are needed: masks and position embeddings depend only on the
        shape, dtype, device, attention mask and positions.
        """
        import torch  # lazy: optional dependency (the collect extra)

        ids = inputs["input_ids"]
        hidden_size = self.model.config.hidden_size
        dummy = {k: v for k, v in inputs.items() if k != "input_ids"}
        dummy["inputs_embeds"] = torch.zeros(
            (*ids.shape, hidden_size), dtype=self.dtype, device=self.device
        )
        self._forward(dummy, last)
        return dict(self._calls)
