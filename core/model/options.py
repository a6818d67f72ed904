"""The model, data and tokenization settings every run that loads a model shares.

``lens collect`` and ``lens evaluate`` (and the coming sample-level
features) load a model the same way, read text the same way and tokenize
and batch it the same way, so these fields live once, here, and each run's
config holds a :class:`ModelOptions` (``config.options``) next to its own
fields. Importing this module needs no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import LensError

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ModelOptions:
    """Which model, which text, and how it is tokenized, batched and placed."""

    model: str  # local folder or hub id
    data: str  # .txt/.jsonl/.json/.parquet path or a `datasets` name
    num_samples: int | None = None  # None = all
    max_length: int = 512  # tokens per sample (longer samples are truncated)
    batch_size: int = 8
    text_field: str = "text"
    split: str = "train"  # for `datasets` names
    dataset_config: str | None = None
    dataset_name: str | None = None  # label recorded (default: the data file's stem)
    device: str = "auto"  # auto|cpu|cuda|cuda:N
    device_map: str | None = None  # e.g. "auto": spread layers over devices with accelerate
    dtype: str = "auto"  # auto|float32|bfloat16|float16
    chat_template: bool = False
    trust_remote_code: bool = False  # never run the model's own Python code unless asked
    padding_side: str | None = None  # None = the tokenizer's own; "left" | "right"

    def validate(self) -> None:
        """Refuse settings that can never work, before any model is loaded."""
        if self.max_length < 1:
            raise LensError(f"--max-length must be at least 1 (got {self.max_length})")
        if self.batch_size < 1:
            raise LensError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.num_samples is not None and self.num_samples < 1:
            raise LensError(f"--num-samples must be at least 1 (got {self.num_samples})")
        if self.padding_side not in (None, "left", "right"):
            raise LensError(f"--padding-side must be 'left' or 'right' (got {self.padding_side!r})")
        if self.dtype not in DTYPES:
            raise LensError(
                f"--dtype must be auto, float32, bfloat16 or float16 (got {self.dtype!r})"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: The names of :class:`ModelOptions`' fields.
OPTION_FIELDS = tuple(f.name for f in fields(ModelOptions))


def split_settings(settings: dict[str, Any]) -> tuple[ModelOptions, dict[str, Any]]:
    """Flat keyword settings (a form, a command line) → ``(ModelOptions, the rest)``."""
    options = ModelOptions(**{k: v for k, v in settings.items() if k in OPTION_FIELDS})
    return options, {k: v for k, v in settings.items() if k not in OPTION_FIELDS}
