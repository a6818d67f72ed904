"""One small adapter per MoE family: what pruning may change and how the config says it.

Where the router and experts live is found from the checkpoint's tensor
names (see :mod:`core.prune.checkpoint`), the same for every family; what
differs is captured here: whether the router has a bias (so an uneven mask can
be padded with unreachable experts), whether routing is group-limited
(DeepSeek-V3), and which config keys hold the expert count and top-k.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import LensError

#: Config keys that hold the routed expert count, by family; all present ones are updated.
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
TOP_K_KEY = "num_experts_per_tok"


@dataclass(frozen=True)
class Family:
    model_type: str
    label: str
    router_bias: bool  # a router bias lets padding experts be made unreachable
    grouped_routing: bool = False  # DeepSeek-V3: n_group / topk_group
    untouched: str = ""  # what pruning leaves alone, for messages and docs


FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        Family("gpt_oss", "GPT-OSS", router_bias=True),
        Family("mixtral", "Mixtral", router_bias=False),
        Family("qwen2_moe", "Qwen2-MoE", router_bias=False, untouched="the shared expert"),
        Family("qwen3_moe", "Qwen3-MoE", router_bias=False),
        Family("olmoe", "OLMoE", router_bias=False),
        Family(
            "deepseek_v3",
            "DeepSeek-V3",
            router_bias=False,
            grouped_routing=True,
            untouched="the shared experts and dense layers",
        ),
    )
}


def family_for(config: dict, where: str) -> Family:
    model_type = config.get("model_type")
    family = FAMILIES.get(str(model_type))
    if family is None:
        raise LensError(
            f"{where}: model_type {model_type!r} is not supported by lens prune "
            f"(supported: {', '.join(FAMILIES)})"
        )
    return family
