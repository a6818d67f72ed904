"""What a collection run is asked to do, and what it reports while it runs.

These dataclasses are the contract between ``core.collect.runner`` and its
callers (the ``lens collect`` command, the TUI's background worker, the sample
build script, distributed launches). They import nothing heavy, so a caller can
build a :class:`CollectConfig` without torch installed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import LensError

#: Stages reported through :class:`CollectProgress`, in the order a run goes through them.
STAGES = ("loading", "tokenizing", "collecting", "writing", "done")


@dataclass
class CollectConfig:
    """One collection run: a model, a calibration dataset, and where the bundle goes."""

    model: str  # local folder or hub id
    data: str  # .txt/.jsonl/.json/.parquet path or a `datasets` name
    out: Path  # bundle path (*.safetensors)
    num_samples: int | None = None  # None = all
    max_length: int = 512
    batch_size: int = 8
    text_field: str = "text"
    split: str = "train"  # for `datasets` names
    dataset_config: str | None = None
    dataset_name: str | None = None  # name stored in bundle metadata (default: data's stem)
    energy: bool = True  # False = router-only (--no-energy)
    keep_raw: Path | None = None
    device: str = "auto"  # auto|cpu|cuda|cuda:N
    dtype: str = "auto"  # auto|float32|bfloat16|float16
    chat_template: bool = False
    trust_remote_code: bool = False
    padding_side: str | None = None  # None = the tokenizer's own; "left" | "right"
    device_map: str | None = None  # e.g. "auto": spread layers over devices with accelerate
    overwrite: bool = False  # replace an existing finished bundle at `out`
    checkpoint_seconds: float = 30.0  # how often finished batches are saved for resume
    shard: str | None = None  # "i/n": only every n-th sample from the i-th (manual sharding)
    command: str | None = None  # the command line, recorded as provenance
    extra_metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.keep_raw is not None:
            self.keep_raw = Path(self.keep_raw)
        self.validate()

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
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise LensError(
                f"--dtype must be auto, float32, bfloat16 or float16 (got {self.dtype!r})"
            )
        if self.shard is not None:
            parse_shard(self.shard)
        if self.out.suffix != ".safetensors":
            raise LensError(f"{self.out}: the output bundle must end in .safetensors")

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["out"] = str(self.out)
        doc["keep_raw"] = None if self.keep_raw is None else str(self.keep_raw)
        return doc


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise LensError(f"--shard must look like INDEX/COUNT, e.g. 0/4 (got {shard!r})") from None
    if count < 1 or not 0 <= index < count:
        raise LensError(f"--shard {shard}: INDEX must be in 0..COUNT-1")
    return index, count


@dataclass(frozen=True)
class CollectProgress:
    """A snapshot of a running collection, sent to the progress callback after each batch."""

    stage: str  # one of STAGES
    samples_done: int
    samples_total: int
    tokens_done: int
    elapsed_s: float
    samples_per_s: float
    tokens_per_s: float
    message: str = ""  # a human note for the stage ("resuming: 96 of 256 already done")

    @property
    def fraction(self) -> float:
        return self.samples_done / self.samples_total if self.samples_total else 0.0


class CollectionCancelled(LensError):
    """The caller asked the run to stop; finished batches are saved and a re-run resumes."""
