"""The shared model runtime: what every feature that runs a model needs, once.

Collection, evaluation and the coming sample-level and streaming features
load, tokenize, batch and hook a model the same way, so those steps live
here rather than inside one feature:

- ``options``  — :class:`ModelOptions`, the model/data/tokenization settings
  a run's config holds (``CollectConfig.options``, ``EvaluateConfig.options``)
- ``loading``  — device and dtype resolution, config load, preflight, model and
  tokenizer loading (never running remote code unless asked), ``ModelCache``,
  ``describe_model``
- ``tokenize`` — each sample alone, in chunks, into int32 id arrays
- ``batching`` — longest-first batch plans and padding with real-token positions
- ``labels``   — the dataset label recorded in bundles and results
- ``hooks``    — :class:`HookSet`, hooks that are always removed together

torch and transformers are imported lazily inside functions, so importing
this package needs neither.
"""
