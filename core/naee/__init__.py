"""NAEE ("Not All Experts are Equal", Lu et al. 2024): per-layer output-error expert search.

For every MoE layer on its own, NAEE keeps the r experts that change the
block's output least when the others are unselectable. The block inputs come
from one forward of the *unpruned* model (:mod:`core.naee.inputs`); the
search (:mod:`core.naee.search`) scores a kept set S by

    Σ over non-padding calibration tokens t of ‖Z_t − Ẑ_t(S)‖²

where Z is the routed experts' output as the model computes it and Ẑ(S) the
same with the dropped experts' router logits at −inf and the family's routing
recomputed by its adapter's ``masked_routing`` — the code ``lens evaluate``
uses. Always-on parts (shared experts) are the same in Z and Ẑ and cancel.
:mod:`core.naee.runner` ties loading, tokenizing and batching (the shared
model runtime) to the search and hands :class:`core.masks.criteria.NaeeScores`
to mask making. torch is imported inside functions only.
"""
