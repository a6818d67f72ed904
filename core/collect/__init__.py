"""Collection: capture router statistics from transformers MoE models into bundles.

Modules (torch and transformers are imported lazily, inside functions, so
``import core.collect`` stays light). Loading, tokenizing, batching and the
hook lifecycle are the shared model runtime in :mod:`core.model`; where each
family keeps its router and experts is :mod:`core.families`.

- ``config``   — :class:`CollectConfig`, :class:`CollectProgress`, cancellation
- ``data``     — samples from .txt/.jsonl/.json/.parquet files or a `datasets` name
- ``capture``  — the hooks and the recording experts forward
- ``partial``  — resumable state beside the bundle being written
- ``distributed`` — torchrun / accelerate ranks and barriers
- ``raw``      — per-token raw shards (``--keep-raw``) and ``lens index``
- ``runner``   — :func:`run_collection`, the pipeline every caller uses
"""

from core.collect.config import CollectConfig, CollectionCancelled, CollectProgress

__all__ = ["CollectConfig", "CollectProgress", "CollectionCancelled"]
