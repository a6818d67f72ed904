"""What a collection run is asked to do, and what it reports while it runs.

These dataclasses are the contract between ``core.collect.runner`` and its
callers (the ``lens collect`` command, the TUI's background worker, the sample
build script, distributed launches). They import nothing heavy, so a caller can
build a :class:`CollectConfig` without torch installed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import LensError
from core.model.options import ModelOptions, split_settings

#: Stages reported through :class:`CollectProgress`, in the order a run goes through them.
STAGES = ("loading", "tokenizing", "collecting", "writing", "done")


@dataclass
class CollectConfig:
    """One collection run: the model and data (``options``) and where the bundle goes."""

    options: ModelOptions  # model, data, tokenization, batching, device (shared with evaluate)
    out: Path  # bundle path (*.safetensors)
    energy: bool = True  # False = router-only (--no-energy)
    keep_raw: Path | None = None
    overwrite: bool = False  # replace an existing finished bundle at `out`
    checkpoint_seconds: float = 30.0  # how often finished batches are saved for resume
    shard: str | None = None  # "i/n": only every n-th sample from the i-th (manual sharding)
    stream_layers: bool = False  # one decoder layer in memory at a time (core.collect.streaming)
    command: str | None = None  # the command line, recorded as provenance
    extra_metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.keep_raw is not None:
            self.keep_raw = Path(self.keep_raw)
        self.validate()

    @classmethod
    def from_settings(cls, **settings: Any) -> CollectConfig:
        """From flat keyword settings (a form, a command line, a script)."""
        options, rest = split_settings(settings)
        return cls(options=options, **rest)

    def validate(self) -> None:
        """Refuse settings that can never work, before any model is loaded."""
        self.options.validate()
        if self.shard is not None:
            parse_shard(self.shard)
        if self.out.suffix != ".safetensors":
            raise LensError(f"{self.out}: the output bundle must end in .safetensors")

    def to_json(self) -> dict:
        """Every setting, flat (recorded as the bundle's ``collect_args``)."""
        doc = {**self.options.to_json(), **asdict(self)}
        del doc["options"]
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
