"""Collection: capture router statistics from transformers MoE models into bundles.

Modules (torch and transformers are imported lazily, inside functions, so
``import core.collect`` stays light):

- ``config``   — :class:`CollectConfig`, :class:`CollectProgress`, cancellation
- ``data``     — samples from .txt/.jsonl/.json/.parquet files or a `datasets` name
- ``families`` — where each MoE family keeps its router and experts
- ``loading``  — model and tokenizer with clear errors, a preflight, a model cache
- ``capture``  — the hooks and the recording experts forward
- ``batching`` — padding with real-token positions (shared with evaluation)
- ``partial``  — resumable state beside the bundle being written
- ``distributed`` — torchrun / accelerate ranks and barriers
- ``raw``      — per-token raw shards (``--keep-raw``) and ``lens index``
- ``runner``   — :func:`run_collection`, the pipeline every caller uses
"""

from core.collect.config import CollectConfig, CollectionCancelled, CollectProgress

__all__ = ["CollectConfig", "CollectProgress", "CollectionCancelled"]
