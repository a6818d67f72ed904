"""Tokenize samples one at a time, in chunks, into compact id arrays.

Collection and evaluation tokenize identically (each sample alone, truncated
to ``max_length``), so a bundle's statistics and an evaluation's losses are
over the same tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.collect.data import Sample
from core.errors import LensError
from core.model.options import ModelOptions

#: Samples tokenized per call: the tokenizer's full encodings of a whole data set
#: would cost far more memory than the ids we keep.
TOKENIZE_CHUNK = 256


def tokenize(tokenizer: Any, samples: list[Sample], options: ModelOptions) -> list[np.ndarray]:
    """Each sample alone, truncated to ``max_length``, special tokens as the tokenizer adds them.

    Returns compact int32 id arrays (4 bytes a token), tokenizing in chunks, so
    memory for a large data set stays a small multiple of its token count.
    """
    add_special = True
    if options.chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise LensError(
                f"{options.model}: its tokenizer has no chat template (--chat-template)"
            )
        add_special = False  # the template already holds the special tokens
    ids: list[np.ndarray] = []
    for start in range(0, len(samples), TOKENIZE_CHUNK):
        texts = [s.text for s in samples[start : start + TOKENIZE_CHUNK]]
        if options.chat_template:
            texts = [
                tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False)
                for t in texts
            ]
        encoded = tokenizer(
            texts,
            truncation=True,
            max_length=options.max_length,
            add_special_tokens=add_special,
        )["input_ids"]
        ids.extend(np.asarray(row, dtype=np.int64).astype(np.int32) for row in encoded)
    return ids
