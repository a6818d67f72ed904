"""The fallback for MoE blocks of no listed family that have the common fused shape.

A block with a ``router`` or ``gate`` linear child and an ``experts`` child
built with transformers' ``@use_experts_implementation`` (which sets
``has_gate`` on the instance) routes through the same interface as the
listed fused families, so new transformers models can be collected before
they get an adapter. Nothing else is assumed: evaluation and pruning refuse it.
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter

#: Router attribute names tried, in order.
ROUTER_ATTRS = ("router", "gate")


def generic_adapter(block: Any) -> FamilyAdapter | None:
    """An adapter for ``block`` if it has the common fused shape, else ``None``."""
    experts = getattr(block, "experts", None)
    if experts is None or not hasattr(experts, "has_gate"):
        return None
    for attr in ROUTER_ATTRS:
        weight = getattr(getattr(block, attr, None), "weight", None)
        if weight is not None and getattr(weight, "ndim", 0) == 2:
            return FamilyAdapter(name="generic", label="generic", router_attr=attr)
    return None
