"""Check the lens's predictions: evaluate masks on held-out text, in memory.

- :mod:`core.evaluate.masking` — :class:`MaskedRouting`, forward hooks that
  make a mask's dropped experts unselectable (router logits at −inf, top-k
  recomputed as the family routes), so no pruned checkpoint is written;
- :mod:`core.evaluate.runner` — :func:`run_evaluation`: next-token loss,
  perplexity and top-1 agreement of the original model and of each mask.

The evaluation JSON it writes is a format like the others:
:mod:`core.formats.evaluation` (torch-free, so readers never import this package).

The comparison with the lens's predictions (retained mass, Jaccard, rank
correlation) lives in :mod:`core.predict`. Only ``masking`` and ``runner``
import torch, and only inside functions.
"""
