"""The dataset label recorded in bundles and evaluation results.

One rule for both, so a bundle and an evaluation of the same data carry the
same name and ``lens predict-vs-actual`` can pair them.
"""

from __future__ import annotations

from pathlib import Path

from core.model.options import ModelOptions


def dataset_label(options: ModelOptions) -> str:
    """The dataset name: given, or the data file's stem, or the ``datasets`` name (and config)."""
    if options.dataset_name:
        return options.dataset_name
    path = Path(options.data)
    if path.exists():
        return path.stem
    return options.data + (f":{options.dataset_config}" if options.dataset_config else "")
