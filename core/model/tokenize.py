"""Tokenize samples one at a time, in chunks, into compact id arrays.

Collection and evaluation tokenize identically (each sample alone, truncated
to ``max_length``), so a bundle's statistics and an evaluation's losses are
over the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.collect.data import Sample
from core.errors import LensError
from core.model.options import ModelOptions

#: Samples tokenized per call: the tokenizer's full encodings of a whole data set
#: would cost far more memory than the ids we keep.
TOKENIZE_CHUNK = 256
#: Characters per wanted token in the first prefix tried for a long text. Any
#: tokenizer gives at least one token per few characters; if a prefix gives too
#: few tokens it is doubled, so this only sets how often that happens.
CHARS_PER_TOKEN = 8


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

    def wrap(text: str) -> str:
        if not options.chat_template:
            return text
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False)

    def count(text: str, cap: int) -> int:
        encoded = tokenizer(
            wrap(text), truncation=True, max_length=cap, add_special_tokens=add_special
        )["input_ids"]
        return len(encoded)

    for start in range(0, len(samples), TOKENIZE_CHUNK):
        texts = [
            wrap(bounded_prefix(s.text, options.max_length, count))
            for s in samples[start : start + TOKENIZE_CHUNK]
        ]
        encoded = tokenizer(
            texts,
            truncation=True,
            max_length=options.max_length,
            add_special_tokens=add_special,
        )["input_ids"]
        ids.extend(np.asarray(row, dtype=np.int64).astype(np.int32) for row in encoded)
    return ids


def bounded_prefix(text: str, max_length: int, count: Callable[[str, int], int]) -> str:
    """A prefix of ``text`` whose truncated tokenization equals that of the whole text.

    Tokenizing a 20 MB line to keep its first 2,048 tokens cost 4.6 GB: the
    tokenizer builds every token, offset and word of the whole text before
    truncating. A prefix that already yields well over ``max_length`` tokens
    gives the same first ``max_length`` tokens (tokenization is local: text far
    beyond the cut cannot change tokens far before it), so only the prefix is
    tokenized. ``count(text, cap)`` is the number of tokens of ``text``
    truncated at ``cap``; the prefix must reach ``max_length + margin`` tokens,
    else it is doubled, up to the whole text.
    """
    margin = max(64, max_length // 4)
    want = max_length + margin
    size = want * CHARS_PER_TOKEN
    while size < len(text):
        prefix = text[:size]
        if count(prefix, want) >= want:
            return prefix
        size *= 2
    return text
