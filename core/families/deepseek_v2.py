"""DeepSeek-V2: softmax scores, (group-limited) greedy top-k.

Collection only: evaluate refuses to mask it in memory and prune refuses it,
because its routing has not been checked against a pruned checkpoint.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

ADAPTER = FamilyAdapter(
    name="deepseek_v2",
    label="DeepSeek-V2",
    router_attr="gate",
    block_classes=("DeepseekV2Moe",),
    model_types=("deepseek_v2",),
    router_doc="`mlp.gate`",
    routing="softmax, (group-limited) greedy top-k",
    collect_doc="softmax, (group-limited) greedy top-k",
)
