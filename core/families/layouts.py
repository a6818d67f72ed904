"""Checkpoint layouts whose tensors do not all have one row per masked expert.

Most families store every router and expert tensor with E rows, one per expert
of the bundle (and of the mask), so ``lens prune`` slices them all by the kept
ids and writes the kept count as the config's expert count. Three do not:

- LongCat-Flash scores ``zero_expert_num`` zero-computation (identity) experts
  after its routed ones: its router and fused ``gate_up_proj`` have a row for
  both kinds, its ``down_proj`` only for the routed ones, and the config counts
  each kind separately (:class:`IdentityExperts`, any number kept).
- Zaya scores one *skip* class after its routed experts: its router's last
  ``out_proj`` row and balancing bias, and no expert tensor; the class always
  exists (:class:`IdentityExperts` with a fixed count that every layer keeps).
- Doge addresses expert i·√E + j by a pair of product keys (i, j): its router has
  2·√E rows, not E (:class:`ProductKeys`).

A layout says how many experts a mask of the checkpoint has, which rows of each
tensor a layer's kept ids keep, which masks the family's config can express, and
the config's new expert counts. It reads only the config and row counts: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import LensError


@dataclass(frozen=True)
class IdentityExperts:
    """Experts that compute nothing (return their input, or zero), scored after the routed ones.

    The mask's E is R + N: ids below R (the config's expert count) are routed experts,
    the N ids from R on are identity experts, interchangeable since they hold no weights.
    A tensor with R + N rows (router weight, biases, LongCat's ``gate_up_proj``) keeps the
    kept ids; a tensor with R rows keeps the kept routed ids. The pruned model keeps its
    routed experts first, then its identity experts, as the mask's ascending ids already are.
    """

    label: str  # how the family calls them, for messages: "zero-computation experts"
    #: config key of N, rewritten to the number kept (LongCat's ``zero_expert_num``); empty:
    #: N is fixed at :attr:`fixed` and every layer must keep all of them (Zaya's skip class)
    count_key: str = ""
    fixed: int = 0

    def identity(self, config: dict) -> int:
        """N, the identity experts the checkpoint's router scores."""
        if not self.count_key:
            return self.fixed
        value = config.get(self.count_key)
        return int(value) if isinstance(value, int) else 0

    def mask_experts(self, config: dict, routed: int) -> int:
        return routed + self.identity(config)

    def row_counts(self, config: dict, routed: int, router: bool) -> set[int]:
        """The row counts a router (``router``) or expert tensor may have."""
        return (
            {routed + self.identity(config)} if router else {routed, routed + self.identity(config)}
        )

    def rows(self, config: dict, routed: int, rows: int, ids: list[int], router: bool) -> list[int]:
        """The rows of a tensor with ``rows`` rows that a layer keeping ``ids`` keeps."""
        return list(ids) if rows != routed else [e for e in ids if e < routed]

    def check(self, config: dict, routed: int, layers: list[list[int]], where: str) -> None:
        """Every layer keeps the same number of routed experts (one count in the config), at
        least one, and all identity experts when their number is fixed."""
        identity = list(range(routed, routed + self.identity(config)))
        splits = [sum(1 for e in ids if e < routed) for ids in layers]
        for layer, (ids, kept) in enumerate(zip(layers, splits)):
            if not self.count_key and not set(identity) <= set(ids):
                raise LensError(
                    f"{where}: layer {layer} drops the {self.label} (id {identity[0]}), which a "
                    f"pruned model always scores; keep expert {identity[0]} in every layer "
                    "(lens evaluate applies masks that drop it in memory)"
                )
            if kept == 0:
                raise LensError(f"{where}: layer {layer} keeps no routed expert, only {self.label}")
            if kept != splits[0]:
                raise LensError(
                    f"{where}: layer 0 keeps {splits[0]} routed experts and "
                    f"{len(layers[0]) - splits[0]} {self.label}, layer {layer} keeps {kept} and "
                    f"{len(ids) - kept}; the config holds one count of each for every layer, so "
                    f"keep the same number of routed experts (ids below {routed}) in every layer"
                )

    def new_counts(self, config: dict, routed: int, layers: list[list[int]]) -> tuple[int, dict]:
        """The pruned routed expert count, and the other config keys to rewrite."""
        kept = sum(1 for e in layers[0] if e < routed)
        extra = {self.count_key: len(layers[0]) - kept} if self.count_key else {}
        return kept, extra


@dataclass(frozen=True)
class ProductKeys:
    """Doge's product-key experts: expert i·K + j (K = ⌊√E⌋) scores X[i] + Y[j].

    The router has 2K rows: K keys for X, then K for Y. Its output is split as
    ``view(2, B·S, K)`` over the whole batch, so one token's X and Y halves may come
    from either block of K rows: a pruned router must keep the *same* keys I in both,
    and a pruned layer is exactly the sub-grid I × I (experts i·K + j, i and j in I),
    K' = |I| keys and K'² experts, the same K' in every layer (one count in the config).
    Experts beyond K² (unreachable when E is not square) are never kept.
    """

    def mask_experts(self, config: dict, routed: int) -> int:
        return routed

    def row_counts(self, config: dict, routed: int, router: bool) -> set[int]:
        return {2 * math.isqrt(routed)} if router else {routed}

    def rows(self, config: dict, routed: int, rows: int, ids: list[int], router: bool) -> list[int]:
        keys = math.isqrt(routed)
        if not router:
            return list(ids)
        kept = sorted({e // keys for e in ids})
        return [*kept, *(keys + i for i in kept)]

    def check(self, config: dict, routed: int, layers: list[list[int]], where: str) -> None:
        keys = math.isqrt(routed)
        sizes = []
        for layer, ids in enumerate(layers):
            kept = sorted({e // keys for e in ids})
            grid = [i * keys + j for i in kept for j in kept]
            if sorted(ids) != grid:
                raise LensError(
                    f"{where}: layer {layer} keeps experts that are not a square sub-grid of "
                    f"Doge's {keys} × {keys} product keys; a pruned Doge keeps the same keys I for "
                    "both halves of its router, so a layer can keep only experts i·"
                    f"{keys} + j with i and j in I (e.g. keys {{0, 1}}: experts 0, 1, "
                    f"{keys}, {keys + 1}); lens evaluate applies any mask in memory"
                )
            sizes.append(len(kept))
        if any(size != sizes[0] for size in sizes):
            raise LensError(
                f"{where}: layers keep key grids of different sizes ({min(sizes)}² to "
                f"{max(sizes)}² experts); Doge's config holds one expert count for every layer"
            )

    def new_counts(self, config: dict, routed: int, layers: list[list[int]]) -> tuple[int, dict]:
        return len(layers[0]), {}


#: What :class:`~core.families.base.PruneSpec` may name as its ``layout``.
ExpertLayout = IdentityExperts | ProductKeys
