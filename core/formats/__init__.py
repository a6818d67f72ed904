"""The project's file formats, each a typed object with read, validate and write.

- :mod:`core.formats.bundle` — derived-statistics bundles (``*.safetensors``);
- :mod:`core.formats.legacy_pt` — the paper's ``derived_stats.pt`` (torch, lazily);
- :mod:`core.formats.mask` — the mask JSON (``schemas/mask.schema.json``);
- :mod:`core.formats.evaluation` — ``lens evaluate``'s results JSON
  (``schemas/evaluation.schema.json``).

Formats import numpy and :mod:`core.io` only: never torch, transformers, or the
packages that produce the files (collect, evaluate, prune), so every reader of
a file works on a laptop without torch.
"""
