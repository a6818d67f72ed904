"""The training mix: how much of each source the tokenizer and the model see.

The tokenizer and the training stage both weight sources by ``source_weights``,
so the vocabulary fits the text the model is trained on.
"""

from __future__ import annotations

from collections.abc import Iterator

from .settings import WORK
from .textio import read_jsonl


def source_weights(sizes: dict[str, int], power: float = 0.5) -> dict[str, float]:
    """Sample sources ∝ size**power so small languages are seen, big ones do not swamp."""
    raw = {k: v**power for k, v in sizes.items() if v > 0}
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def training_texts() -> dict[str, list[str]]:
    folder = WORK / "corpora" / "train"
    return {p.stem: read_jsonl(p) for p in sorted(folder.glob("*.jsonl"))}


def tokenizer_sample(texts: dict[str, list[str]], budget: int = 3_000_000) -> Iterator[str]:
    """The tokenizer's training text: every source, weighted like training, ~budget chars."""
    sizes = {k: sum(map(len, v)) for k, v in texts.items()}
    weights = source_weights(sizes)
    for name, items in texts.items():
        share = int(budget * weights.get(name, 0))
        used = 0
        for text in items:
            if used >= share:
                break
            used += len(text)
            yield text
