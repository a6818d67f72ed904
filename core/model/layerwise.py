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

Weights are read by name prefix, each target tensor allocated once and every
checkpoint tensor read (and, for MXFP4/FP8 checkpoints, decoded) straight into
its slice (:mod:`core.model.layer_weights`), so loading a layer needs little
more than the layer. Freed layers and activations go back to the system at
once rather than waiting in glibc's heap or MKL's buffer cache
(:mod:`core.model.native_memory`). torch and transformers are imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import LensError
from core.families.layers import MoeLayer, find_moe_layers
from core.model.batching import backbone_of
from core.model.layer_weights import CheckpointTensors, WeightLoader, quantisation_of
from core.model.loading import load_model_config, remote_code, resolve_device
from core.model.native_memory import (
    mapping_threshold,
    release_freed_memory,
    return_memory_promptly,
)
from core.model.options import ModelOptions


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
        quantisation = quantisation_of(config, options.model)
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
        self.tensors = CheckpointTensors(self.folder, quantisation)
        self._loader = WeightLoader(model, self.tensors, self.folder, self.device, dtype)
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

        self._loader.load(prefix)
        left = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
        if left:
            raise LensError(
                f"{self.folder}: the checkpoint lacks {prefix}{left[0]} "
                f"({len(left)} tensors of {prefix.rstrip('.')} not found)"
            )
        module.to(torch.device(self.device))

    def map_large_blocks(self, hidden_state_bytes: int) -> None:
        """On CPU, give blocks wider than a batch's hidden states their own mappings.

        Freed activations must leave the process, not wait in the heap (see
        :func:`~core.model.native_memory.mapping_threshold`); on an accelerator
        they never were in the process's heap. Call it before the first layer
        is read, with the largest batch's hidden-state bytes.
        """
        if self.device.type == "cpu":
            return_memory_promptly(mapping_threshold(hidden_state_bytes))

    def load_layer(self, index: int) -> Any:
        layer = self._real_layers[index]
        self._load(layer, self.layer_names[index] + ".")
        release_freed_memory()  # the read buffers of checkpoint tensors that needed a cast
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
