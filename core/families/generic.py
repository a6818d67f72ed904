"""The fallback for MoE blocks of no listed family that have the common fused shape.

A block with a ``router`` or ``gate`` child that holds a 2-D weight (its own,
or its linear's: ``wg`` in HunYuan, ``layer`` in DBRX/Granite, ``classifier``
in LongCat, ``gate`` in AFMoE, ``proj`` in Gemma-4) and an ``experts`` child
built with transformers' ``@use_experts_implementation`` (which sets
``has_gate`` on the instance) routes through the same interface as the listed
fused families, so new transformers models can be collected before they get
an adapter. Nothing else is assumed: evaluation and pruning refuse it.
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter

#: Router attribute names tried, in order.
ROUTER_ATTRS = ("router", "gate")
#: Names of the linear layer inside a router module that has no weight of its own.
ROUTER_LINEARS = ("wg", "layer", "classifier", "gate", "proj")


def router_weight(router: Any) -> Any | None:
    """The router's 2-D ``[E(+shared), H]`` weight: its own, or that of its inner linear."""
    weight = getattr(router, "weight", None)
    if weight is not None and getattr(weight, "ndim", 0) == 2:
        return weight
    for name in ROUTER_LINEARS:
        weight = getattr(getattr(router, name, None), "weight", None)
        if weight is not None and getattr(weight, "ndim", 0) == 2:
            return weight
    return None


def generic_adapter(block: Any) -> FamilyAdapter | None:
    """An adapter for ``block`` if it has the common fused shape, else ``None``."""
    experts = getattr(block, "experts", None)
    if experts is None or not hasattr(experts, "has_gate"):
        return None
    for attr in ROUTER_ATTRS:
        router = getattr(block, attr, None)
        if router is not None and router_weight(router) is not None:
            return FamilyAdapter(name="generic", label="generic", router_attr=attr)
    return None
