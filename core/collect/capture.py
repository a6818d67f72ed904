"""Read-only capture of router statistics from a loaded transformers MoE model.

For every MoE layer and every forward pass, :class:`RouterCapture` reduces on
the layer's own device, per sample, over non-padding tokens only:

- ``prob_sum``: the dense router softmax over all E experts (float32, before
  top-k), from a forward hook on the router module;
- ``topk_count`` / ``weight_sum``: the top-k experts and weights the model
  actually used, read from the inputs of its experts module;
- with ``energy``: the norm ‖y‖ of each selected expert's output, giving
  ``act_norm_sum``, ``act_sqnorm_sum``, ``reap_sum`` (w‖y‖) and
  ``energy_sum`` (w²‖y‖²);
- with ``energy`` (not for Llama-4): ``reap_literal_count`` / ``reap_literal_sum``,
  REAP as Cerebras' code computes it (docs/formats.md §Criteria): the top-k
  of the *raw router logits*, each weighted by its full-E softmax probability
  (renormalised over those k only when the router or config has
  ``norm_topk_prob = true``), times ‖y‖ of that expert. Where that selection
  is the model's own (every softmax/top-k family: top-k of the logits is
  top-k of the softmax) the norms are the ones already computed; where it is
  not (DeepSeek-V3's biased, grouped selection) the experts module is called
  once more per slot on the literal selection with unit weights, read-only.

Only ``[B, L, E]`` sums leave the device. Nothing here changes what the model
computes: hooks return ``None``, and the expert-output norms come either from
a recording forward that performs transformers' ``grouped_mm`` experts
computation op for op (the default implementation, so outputs stay bitwise
identical — a test checks it), or, for any other experts implementation, from
extra calls of the experts module on one top-k slot at a time with unit
weights (exact, but the experts run twice).

Reductions use dense scatters into ``[T, E]`` (top-k indices are distinct
per token) followed by sums, never atomic adds, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import LensError
from core.families.layers import MoeLayer
from core.model.hooks import HookSet

ROUTER_STATS = ("prob_sum",)
ROUTED_STATS = ("topk_count", "weight_sum")
ENERGY_STATS = ("energy_sum", "act_norm_sum", "act_sqnorm_sum", "reap_sum")
LITERAL_STATS = ("reap_literal_count", "reap_literal_sum")


def stat_names(energy: bool, literal: bool = False) -> tuple[str, ...]:
    """The statistics a run records, in the channel order of the accumulators."""
    return (
        ROUTER_STATS
        + ROUTED_STATS
        + (ENERGY_STATS if energy else ())
        + (LITERAL_STATS if energy and literal else ())
    )


def norm_topk_prob(layer: MoeLayer) -> bool:
    """Whether the layer's router or config says ``norm_topk_prob = true`` (REAP's renormalise)."""
    for owner in (layer.router, layer.block, getattr(layer.experts, "config", None)):
        value = getattr(owner, "norm_topk_prob", None)
        if value is not None:
            return bool(value)
    return False


class RouterCapture:
    """Hooks on every MoE layer; use as a context manager around forward passes.

    ::

        with RouterCapture(layers, energy=True) as capture:
            capture.begin_batch(attention_mask)
            model(input_ids, attention_mask=attention_mask)
            sums = capture.end_batch()  # {"prob_sum": np.ndarray [B, L, E], ...}
    """

    def __init__(
        self, layers: list[MoeLayer], *, energy: bool = True, keep_token_probs: bool = False
    ) -> None:
        self.layers = layers
        self.energy = energy
        self.keep_token_probs = keep_token_probs
        # REAP's literal weights need ‖y‖ of unscaled expert outputs: not Llama-4's style, and
        # not families with their own hooks (their experts are not called per top-k slot).
        self.literal = (
            energy and layers[0].family.style != "llama4" and layers[0].family.observe is None
        )
        self.names = stat_names(energy, self.literal)
        self.num_experts = layers[0].num_experts
        self._literal_logits: dict[int, Any] = {}
        self._renormalise = [norm_topk_prob(layer) for layer in layers]
        self._hooks = HookSet()
        self._acc: list[Any] = []
        self._masks: dict[Any, Any] = {}
        self._mask = None
        self._shape: tuple[int, int] = (0, 0)
        self._token_probs: list[Any] = []
        self._llama4_routing: dict[int, tuple[Any, Any]] = {}
        #: how expert-output norms are obtained, per layer ("recording" | "per-slot" | "none")
        self.norm_method: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RouterCapture:
        self._hooks.install(self._attach_all)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook and restore every patched forward."""
        self._hooks.close()

    def _attach_all(self, hooks: HookSet) -> None:
        for layer in self.layers:
            self._attach(hooks, layer)

    def _attach(self, hooks: HookSet, layer: MoeLayer) -> None:
        if layer.family.observe is not None:  # JetMoE, Doge, Zaya: the family's own hooks
            layer.family.observe(layer, hooks, LayerSink(self, layer))
            self.norm_method.append("family" if self.energy else "none")
            return
        hooks.forward_hook(layer.router, self._router_hook(layer))
        if layer.family.style == "llama4":
            self.norm_method.append("output" if self.energy else "none")
            if self.energy:
                hooks.forward_hook(layer.experts, self._llama4_experts_hook(layer))
            return
        if not self.energy:
            self.norm_method.append("none")
            hooks.forward_pre_hook(layer.experts, self._routing_pre_hook(layer), with_kwargs=True)
            return
        recording = _recording_forward(
            layer.experts, lambda *a, i=layer.index, m=layer.experts: self._record(i, *a, experts=m)
        )
        if recording is not None:
            hooks.patch_forward(layer.experts, recording)
            self.norm_method.append("recording")
        else:
            self.norm_method.append("per-slot")
            hooks.forward_hook(layer.experts, self._per_slot_hook(layer), with_kwargs=True)

    # ------------------------------------------------------------------ batches

    def begin_batch(self, attention_mask: Any) -> None:
        """Start a batch: ``attention_mask`` is ``[B, S]`` (1 = real token)."""
        import torch  # lazy: optional dependency (the collect extra)

        mask = attention_mask.to(torch.bool)
        batch, seq = mask.shape
        self._shape = (int(batch), int(seq))
        self._mask = mask.reshape(-1)
        self._masks = {self._mask.device: self._mask}
        self._acc = []
        for layer in self.layers:
            device = _module_device(layer.router)
            self._acc.append(
                torch.zeros(
                    (batch, self.num_experts, len(self.names)), dtype=torch.float32, device=device
                )
            )
        self._token_probs = [None] * len(self.layers)
        self._llama4_routing.clear()
        self._literal_logits.clear()

    def end_batch(self) -> dict[str, Any]:
        """Per-sample sums of the batch as numpy arrays ``[B, L, E]`` (float32)."""
        import torch  # lazy: optional dependency (the collect extra)

        first = self._acc[0].device
        stacked = torch.stack([acc.to(first) for acc in self._acc], dim=1)  # [B, L, E, n]
        array = stacked.cpu().numpy()
        sums = {name: array[..., i] for i, name in enumerate(self.names)}
        self._acc = []
        return sums

    def token_probs(self) -> list[Any]:
        """Per layer, the batch's ``[B, S, E]`` bfloat16 probabilities (padding zeroed), on CPU."""
        return [p.cpu() for p in self._token_probs]

    def _mask_on(self, device: Any) -> Any:
        mask = self._masks.get(device)
        if mask is None:
            mask = self._mask.to(device)
            self._masks[device] = mask
        return mask

    def _check_tokens(self, tokens: int, layer: MoeLayer) -> None:
        batch, seq = self._shape
        if tokens != batch * seq:
            raise LensError(
                f"{layer.name}: saw {tokens} tokens but the batch has {batch}×{seq}; "
                "this model reorders or drops tokens before its MoE layers"
            )

    # ------------------------------------------------------------------ router

    def _router_hook(self, layer: MoeLayer) -> Callable:
        import torch  # lazy: optional dependency (the collect extra)

        index, experts = layer.index, self.num_experts

        def hook(module: Any, args: Any, output: Any) -> None:
            if self._mask is None:
                return  # a forward outside begin_batch (e.g. the caller's own): not ours
            logits = output[layer.family.logits_index] if isinstance(output, tuple) else output
            logits = logits.reshape(-1, experts)
            self._check_tokens(logits.shape[0], layer)
            if layer.family.router_output == "probs":  # already the softmax (Gemma-4)
                probs = logits.float()
            else:
                probs = torch.softmax(logits.float(), dim=-1)
            self._add_probs(layer, probs)
            if self.literal:
                self._literal_logits[index] = logits
            if layer.family.style == "llama4":
                scores = output[0].reshape(-1, experts)
                top_index = torch.topk(logits, layer.top_k, dim=1)[1]
                weights = scores.gather(1, top_index)
                self._llama4_routing[index] = (top_index, weights)
                if not self.energy:
                    self._record(index, top_index, weights, None)

        return hook

    def _add_probs(self, layer: MoeLayer, probs: Any) -> None:
        """Add one layer's dense ``[T, E]`` router probabilities to ``prob_sum`` (padding zeroed)."""
        import torch  # lazy: optional dependency (the collect extra)

        batch, seq = self._shape
        experts = self.num_experts
        mask = self._mask_on(probs.device)
        probs = torch.where(mask[:, None], probs.float(), 0.0)
        self._acc[layer.index][:, :, 0] += probs.view(batch, seq, experts).sum(dim=1)
        if self.keep_token_probs:
            self._token_probs[layer.index] = probs.view(batch, seq, experts).to(torch.bfloat16)

    # ------------------------------------------------------------------ routed experts

    def _record(
        self,
        index: int,
        top_index: Any,
        weights: Any,
        norms: Any | None,
        hidden: Any = None,
        experts: Any = None,
    ) -> None:
        """Add one layer's routed statistics for the batch (norms ``[T, k]`` or ``None``).

        ``hidden`` and ``experts`` (the experts module's input and the module)
        let REAP's literal selection compute norms the model's routing did not.
        """
        import torch  # lazy: optional dependency (the collect extra)

        if self._mask is None:
            return
        layer = self.layers[index]
        tokens, k = top_index.shape
        self._check_tokens(tokens, layer)
        batch, seq = self._shape
        mask = self._mask_on(top_index.device)
        w = weights.float()
        values = [torch.ones_like(w), w]
        if norms is not None:
            n = norms.float()
            wn = w * n
            values += [wn * wn, n, n * n, wn]  # energy, act_norm, act_sqnorm, reap
        stacked = torch.stack(values, dim=-1)  # [T, k, c]
        stacked = torch.where(mask[:, None, None], stacked, 0.0)
        channels = stacked.shape[-1]
        dense = torch.zeros(
            (tokens, self.num_experts, channels), dtype=torch.float32, device=stacked.device
        )
        if layer.family.hash_routed(layer.router):
            # A token-id table may name one expert in two slots (the model runs it twice):
            # add slot by slot, each slot's indices distinct, so every slot counts.
            for slot in range(k):
                one = top_index[:, slot : slot + 1, None].expand(tokens, 1, channels)
                dense.scatter_add_(1, one, stacked[:, slot : slot + 1])
        else:
            dense.scatter_(1, top_index[:, :, None].expand(tokens, k, channels), stacked)
        acc = self._acc[index]
        acc[:, :, 1 : 1 + channels] += (
            dense.view(batch, seq, self.num_experts, channels).sum(dim=1).to(acc.device)
        )
        if norms is not None and self.literal:
            self._record_literal(index, top_index, norms, hidden, experts)

    def _record_literal(
        self, index: int, top_index: Any, norms: Any, hidden: Any, experts: Any
    ) -> None:
        """REAP's own weights and selection (docs/formats.md §Criteria, reap-literal)."""
        import torch  # lazy: optional dependency (the collect extra)

        logits = self._literal_logits.pop(index, None)
        if logits is None:
            return
        tokens, k = top_index.shape
        device = top_index.device
        logits = logits.to(device)
        probs = torch.softmax(logits, dim=1, dtype=torch.float)
        literal = torch.topk(logits, k, dim=-1)[1]
        w = probs.gather(1, literal)
        if self._renormalise[index]:
            w = (w / w.sum(dim=-1, keepdim=True)).clamp(min=torch.finfo(w.dtype).eps)
        same = literal[:, :, None] == top_index[:, None, :]  # [T, k_literal, k_model]
        if bool(same.any(dim=-1).all()):
            n = torch.where(same, norms.float()[:, None, :], 0.0).sum(dim=-1)
        else:
            n = self._unit_norms(experts, hidden, literal, self.layers[index])
        mask = self._mask_on(device)
        values = torch.stack([torch.ones_like(w), w * n], dim=-1)
        values = torch.where(mask[:, None, None], values, 0.0)
        dense = torch.zeros((tokens, self.num_experts, 2), dtype=torch.float32, device=device)
        dense.scatter_(1, literal[:, :, None].expand(tokens, k, 2), values)
        batch, seq = self._shape
        acc = self._acc[index]
        first = len(self.names) - len(LITERAL_STATS)
        acc[:, :, first:] += dense.view(batch, seq, self.num_experts, 2).sum(dim=1).to(acc.device)

    @staticmethod
    def _unit_norms(experts: Any, hidden: Any, selection: Any, layer: MoeLayer) -> Any:
        """‖y‖ ``[T, k]`` of the experts in ``selection``: the experts module's own forward,
        once per slot with weight 1 on that slot and 0 on the others (read-only; the model's
        output is untouched). All k slots are passed, as in :meth:`_per_slot_hook`: some
        implementations (LongCat-Flash's) cannot run with k = 1."""
        import torch  # lazy: optional dependency (the collect extra)

        if experts is None or hidden is None:
            raise LensError(
                f"{layer.name}: REAP's literal selection differs from the model's, and the "
                "experts' input is not available to compute its norms"
            )
        forward = type(experts).forward
        norms = []
        for slot in range(selection.shape[1]):
            unit = torch.zeros(selection.shape, dtype=hidden.dtype, device=hidden.device)
            unit[:, slot] = 1
            norms.append(forward(experts, hidden, selection, unit).float().norm(dim=-1).reshape(-1))
        return torch.stack(norms, dim=1)

    def _routing_pre_hook(self, layer: MoeLayer) -> Callable:
        def hook(module: Any, args: Any, kwargs: Any) -> None:
            _, top_index, weights = _routed_inputs(args, kwargs)
            self._record(layer.index, top_index, weights, None)

        return hook

    def _per_slot_hook(self, layer: MoeLayer) -> Callable:
        """Any experts implementation: y for slot j = experts(hidden, index, weight 1 at j, 0 else).

        All k slots are passed (weights one-hot), not one slot alone: some
        implementations (LongCat-Flash's) cannot run with k = 1.
        """
        import torch  # lazy: optional dependency (the collect extra)

        def hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            if self._mask is None:
                return
            hidden, top_index, weights = _routed_inputs(args, kwargs)
            forward = type(module).forward
            norms = []
            for slot in range(top_index.shape[1]):
                unit = torch.zeros_like(weights)
                unit[:, slot] = 1
                y = forward(module, hidden, top_index, unit)
                norms.append(y.float().norm(dim=-1).reshape(-1))  # DBRX returns [B, S, H]
            self._record(layer.index, top_index, weights, torch.stack(norms, dim=1), hidden, module)

        return hook

    def _llama4_experts_hook(self, layer: MoeLayer) -> Callable:
        """Llama-4 runs every expert on inputs pre-scaled by w: ‖y‖ is ‖expert(w·x)‖ / w."""
        import torch  # lazy: optional dependency (the collect extra)

        def hook(module: Any, args: Any, output: Any) -> None:
            if self._mask is None or layer.index not in self._llama4_routing:
                return
            top_index, weights = self._llama4_routing.pop(layer.index)
            tokens = top_index.shape[0]
            contribution = output.float().norm(dim=-1).view(self.num_experts, tokens).t()
            contribution = contribution.gather(1, top_index)
            w = weights.float()
            norms = torch.where(w > 0, contribution / torch.where(w > 0, w, 1.0), 0.0)
            self._record(layer.index, top_index, weights, norms)

        return hook


class LayerSink:
    """Where a family's own hooks (``FamilyAdapter.observe``) report one MoE layer's routing.

    JetMoE, Doge and Zaya route inside their blocks rather than through a router
    module returning ``(logits, weights, index)`` and an experts module taking them;
    their adapters install hooks that read what the model computed and hand it here,
    so the reductions (padding, per-sample sums) stay the capture's own.
    """

    def __init__(self, capture: RouterCapture, layer: MoeLayer) -> None:
        self._capture = capture
        self.layer = layer

    @property
    def active(self) -> bool:
        """Inside ``begin_batch`` … ``end_batch`` (a forward of the caller's own is not ours)."""
        return self._capture._mask is not None

    @property
    def energy(self) -> bool:
        """Whether expert-output norms are wanted."""
        return self._capture.energy

    def probs(self, probs: Any) -> None:
        """The dense ``[T, E]`` router probabilities (the paper's softmax over all E)."""
        if self.active:
            self._capture._check_tokens(probs.shape[0], self.layer)
            self._capture._add_probs(self.layer, probs)

    def routed(self, top_index: Any, weights: Any, norms: Any | None = None) -> None:
        """The top-k experts ``[T, k]`` the model used, their weights, and ‖y‖ if measured."""
        self._capture._record(self.layer.index, top_index, weights, norms)


def _routed_inputs(args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    """``(hidden, top_k_index, top_k_weights)`` from an experts call, positional or named."""
    values = list(args[:3])
    names = (
        ("hidden_states",),
        ("top_k_index", "router_indices", "selected_experts"),
        ("top_k_weights", "routing_weights", "router_scores"),
    )
    for position in range(len(values), 3):
        for name in names[position]:
            if name in kwargs:
                values.append(kwargs[name])
                break
        else:
            raise LensError(
                f"experts module called without {names[position][0]}: unsupported signature"
            )
    return values[0], values[1], values[2]


def _module_device(module: Any) -> Any:
    for param in module.parameters():
        return param.device
    for buffer in module.buffers():
        return buffer.device
    import torch  # lazy: optional dependency (the collect extra)

    return torch.device("cpu")


def _recording_forward(experts: Any, record: Callable) -> Callable | None:
    """A forward for a fused experts module that also records ‖y‖, or ``None`` if unsafe.

    It is used only where the module would run transformers' ``grouped_mm``
    implementation anyway, and performs that computation op for op (same
    kernels via ``_grouped_linear``, same order), adding only a norm of the
    per-(token, slot) expert outputs: the module's output is bitwise what it
    would have been.
    """
    config = getattr(experts, "config", None)
    if getattr(config, "_experts_implementation", None) != "grouped_mm":
        return None
    if not hasattr(experts, "has_gate") or getattr(experts, "_is_expert_parallel", False):
        return None
    try:
        from transformers.integrations.moe import _grouped_linear
    except ImportError:
        return None
    import torch  # lazy: optional dependency (the collect extra)

    def forward(self: Any, hidden_states: Any, top_k_index: Any, top_k_weights: Any) -> Any:
        device = hidden_states.device
        top_k = top_k_index.size(-1)
        tokens = hidden_states.size(0)
        hidden_dim = hidden_states.size(-1)
        flat_weights = top_k_weights.reshape(-1)
        flat_experts = top_k_index.reshape(-1)
        # Group the (token, slot) rows by expert, as grouped_mm does.
        sorted_experts, perm = torch.sort(flat_experts)
        grouped_hidden = hidden_states[perm // top_k]
        grouped_weights = flat_weights[perm]
        histc_input = (
            sorted_experts.float() if device.type in ("cpu", "mps") else sorted_experts.int()
        )
        per_expert = torch.histc(
            histc_input, bins=self.num_experts, min=0, max=self.num_experts - 1
        )
        offsets = torch.cumsum(per_expert, dim=0, dtype=torch.int32)
        if self.has_gate:
            up_weight = self.gate_up_proj
            up_bias = self.gate_up_proj_bias[sorted_experts] if self.has_bias else None
        else:
            up_weight = self.up_proj
            up_bias = self.up_proj_bias[sorted_experts] if self.has_bias else None
        out = _grouped_linear(
            grouped_hidden, up_weight, offsets, bias=up_bias, is_transposed=self.is_transposed
        )
        out = self._apply_gate(out) if self.has_gate else self.act_fn(out)
        down_bias = self.down_proj_bias[sorted_experts] if self.has_bias else None
        out = _grouped_linear(
            out, self.down_proj, offsets, bias=down_bias, is_transposed=self.is_transposed
        )
        if self.has_post_expert_norm:
            out = self.post_expert_norm(out)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.size(0), device=device)
        # The one addition: ‖y‖ of every (token, slot) expert output, back in token order.
        norms = out.float().norm(dim=-1)[inverse].view(tokens, top_k)
        record(top_k_index, top_k_weights, norms, hidden_states)
        weighted = (out * grouped_weights.unsqueeze(-1))[inverse]
        return weighted.view(tokens, top_k, hidden_dim).sum(dim=1).to(hidden_states.dtype)

    return forward
