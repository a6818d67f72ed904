"""Checkpoint surgery and weight-based scores, without torch.

- :mod:`core.prune.checkpoint`: a model folder read lazily (config, shard
  headers, MoE layers found from tensor names);
- :mod:`core.prune.surgery`: :func:`prune_checkpoint` writes the pruned model;
- :mod:`core.prune.aimer`: calibration-free AIMER scores from expert weights.

What differs between MoE families (config keys, router bias, grouped
routing) is each family's :class:`~core.families.base.PruneSpec`.

Nothing here imports torch or transformers: tensors are sliced as byte ranges.
"""
