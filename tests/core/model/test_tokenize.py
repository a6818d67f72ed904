"""Truncation never tokenizes a whole huge text, and gives exactly what whole-text truncation gives."""

from __future__ import annotations

import numpy as np
import pytest

from core.collect.data import Sample
from core.model import tokenize as tk
from core.model.options import ModelOptions

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """The tests' byte-level BPE, plain and with BOS/EOS added around every text."""
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    from tests.tiny_models import build_tokenizer

    plain = build_tokenizer(tmp_path_factory.mktemp("tok"))
    inner = build_tokenizer(tmp_path_factory.mktemp("tok2")).backend_tokenizer
    bos, eos = plain.convert_tokens_to_ids(["<|bos|>", "<|eos|>"])
    inner.post_processor = TemplateProcessing(
        single="<|bos|> $A <|eos|>", special_tokens=[("<|bos|>", bos), ("<|eos|>", eos)]
    )
    special = PreTrainedTokenizerFast(
        tokenizer_object=inner, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>"
    )
    return {"plain": plain, "special": special}


def _texts(rng: np.random.Generator, max_length: int) -> list[str]:
    """Texts whose length straddles every prefix size tried, cut mid-word, in spaces,
    inside multi-byte characters' runs, and with no spaces at all."""
    words = ["the", "router", "séquence", "专家", "of", "calibration", "x" * 40, "\n", "  "]
    first = (max_length + max(64, max_length // 4)) * tk.CHARS_PER_TOKEN
    out = []
    for size in (first - 3, first, first + 1, first + 7, 2 * first + 5, 5 * first):
        text = ""
        while len(text) < size:
            text += str(rng.choice(words)) + ("" if rng.random() < 0.3 else " ")
        out.append(text[:size])
    out.append("专" * (3 * first))  # three UTF-8 bytes a character: more tokens than characters
    out.append("a" * (4 * first))  # one giant word
    out.append("ab " * first)
    return out


@pytest.mark.parametrize("kind", ["plain", "special"])
@pytest.mark.parametrize("max_length", [3, 7, 33])
def test_prefix_tokenization_equals_whole_text_truncation(tokenizers, kind, max_length):
    tokenizer = tokenizers[kind]
    texts = _texts(np.random.default_rng(max_length), max_length)
    samples = [Sample(i, t) for i, t in enumerate(texts)]
    options = ModelOptions(model="m", data="d", max_length=max_length)
    got = tk.tokenize(tokenizer, samples, options)
    for text, ids in zip(texts, got):
        whole = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        assert ids.tolist() == whole, text[:40]


def test_a_huge_text_is_never_tokenized_whole(tokenizers, monkeypatch):
    """A 2 MB line: no call to the tokenizer sees more than a small multiple of max_length chars."""
    tokenizer = tokenizers["plain"]
    seen: list[int] = []

    class Spy:
        def __call__(self, texts, **kwargs):
            batch = [texts] if isinstance(texts, str) else texts
            seen.extend(len(t) for t in batch)
            return tokenizer(texts, **kwargs)

    huge = "calibration data for the router " * 65_000  # ~2 MB
    options = ModelOptions(model="m", data="d", max_length=64)
    [ids] = tk.tokenize(Spy(), [Sample(0, huge)], options)
    assert len(ids) == 64
    assert max(seen) <= 16 * (64 + 64) * tk.CHARS_PER_TOKEN, max(seen)
    whole = tokenizer(huge[:100_000], truncation=True, max_length=64)["input_ids"]
    assert ids.tolist() == whole
