"""Expert masks: criteria, selection under a budget, mask making, and comparing masks.

- :mod:`core.masks.criteria` — scores ``[L, E]`` of a criterion as functions of bundles;
- :mod:`core.masks.selection` — preference orders and per-layer / global / grouped
  selection (and ``coverage``'s round-robin);
- :mod:`core.masks.make` — :func:`~core.masks.make.make_mask`, a :class:`~core.formats.mask.Mask`
  from a criterion and a budget;
- :mod:`core.masks.compare` — masks side by side.

The mask file itself lives in :mod:`core.formats.mask`. numpy only: AIMER's
checkpoint scores are computed by :mod:`core.prune.aimer` and passed in.
"""
