"""Independent per-sample references for collection tests.

Each sample is run alone, unpadded, through the model with the test's own hooks
(not the code under test): the dense router logits come from
``output_router_logits=True``, the routing the model used from its router's
output, and each selected expert's output y from the expert weights by hand.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.families.layers import find_moe_layers


def expert_output(experts: torch.nn.Module, family: str, x: torch.Tensor, e: int) -> torch.Tensor:
    """y = expert e applied to x [T, H], written out from the weights."""
    x = x.float()
    if family == "gpt_oss":
        gate_up = x @ experts.gate_up_proj[e].float() + experts.gate_up_proj_bias[e].float()
        gate, up = gate_up[..., ::2], gate_up[..., 1::2]
        gate = gate.clamp(max=experts.limit)
        up = up.clamp(min=-experts.limit, max=experts.limit)
        glu = gate * torch.sigmoid(gate * experts.alpha)
        return ((up + 1) * glu) @ experts.down_proj[e].float() + experts.down_proj_bias[e].float()
    if family == "llama4":  # [E, H, 2I] and [E, I, H], gate then up
        gate, up = (x @ experts.gate_up_proj[e].float()).chunk(2, dim=-1)
        return (up * F.silu(gate)) @ experts.down_proj[e].float()
    # Mixtral-style fused experts: gate and up concatenated, [E, 2I, H] and [E, H, I], SiLU.
    gate, up = (x @ experts.gate_up_proj[e].float().T).chunk(2, dim=-1)
    return (F.silu(gate) * up) @ experts.down_proj[e].float().T


def _routing(family: str, output: tuple, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, indices) the model used, from its router's own output."""
    if family == "llama4":  # (scores, logits): top-k of the logits, sigmoid of those logits
        logits = output[1].float()
        indices = torch.topk(logits, top_k, dim=1)[1]
        return torch.sigmoid(logits.gather(1, indices)), indices
    return output[1].detach(), output[2].detach()


def _expert_norm(layer, family: str, x: torch.Tensor, e: int, w: float) -> float:
    """‖y‖ of expert e for one token; Llama-4 scales the input by w instead of the output."""
    if family == "llama4":
        return float(expert_output(layer.experts, family, w * x, e).norm()) / w
    return float(expert_output(layer.experts, family, x, e).norm())


@torch.no_grad()
def per_sample_reference(model, family: str, token_ids: list[list[int]]) -> dict[str, np.ndarray]:
    """Every bundle statistic (docs/formats.md §Bundle) for each sample, from one unpadded forward per sample."""
    layers = find_moe_layers(model)
    num_layers, num_experts = len(layers), layers[0].num_experts
    names = (
        "prob_sum",
        "topk_count",
        "weight_sum",
        "energy_sum",
        "act_norm_sum",
        "act_sqnorm_sum",
        "reap_sum",
    )
    out = {name: np.zeros((len(token_ids), num_layers, num_experts)) for name in names}
    for i, ids in enumerate(token_ids):
        routed: dict[int, tuple] = {}
        hidden: dict[int, torch.Tensor] = {}
        handles = []
        for layer in layers:

            def router_hook(module, args, output, layer=layer, routed=routed):
                routed[layer.index] = _routing(family, output, layer.top_k)

            def block_hook(module, args, l=layer.index, hidden=hidden):
                hidden[l] = args[0].detach().reshape(-1, args[0].shape[-1])

            handles.append(layer.router.register_forward_hook(router_hook))
            handles.append(layer.block.register_forward_pre_hook(block_hook))
        try:
            result = model(torch.tensor([ids]), output_router_logits=True)
        finally:
            for handle in handles:
                handle.remove()
        for layer in layers:
            l = layer.index
            logits = result.router_logits[l].float()
            out["prob_sum"][i, l] = torch.softmax(logits, dim=-1).sum(0).numpy()
            weights, indices = routed[l]
            for t in range(indices.shape[0]):
                for slot in range(indices.shape[1]):
                    e = int(indices[t, slot])
                    w = float(weights[t, slot])
                    norm = _expert_norm(layer, family, hidden[l][t : t + 1], e, w)
                    out["topk_count"][i, l, e] += 1
                    out["weight_sum"][i, l, e] += w
                    out["energy_sum"][i, l, e] += w * w * norm * norm
                    out["act_norm_sum"][i, l, e] += norm
                    out["act_sqnorm_sum"][i, l, e] += norm * norm
                    out["reap_sum"][i, l, e] += w * norm
    return out
