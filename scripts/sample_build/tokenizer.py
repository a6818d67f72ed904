"""Stage 2 (``tokenizer``): a byte-level BPE trained on the training split."""

from __future__ import annotations

import argparse
import time

from .mix import tokenizer_sample, training_texts
from .settings import MODEL_CONFIG, MODEL_DIR, SPECIAL_TOKENS, VOCAB_SIZE
from .textio import log


def stage_tokenizer(args: argparse.Namespace) -> None:
    if (MODEL_DIR / "tokenizer.json").exists() and not args.force:
        log(f"tokenizer: {MODEL_DIR}/tokenizer.json exists, skipping")
        return
    # Lazily: tokenizers and transformers (the `samples` and `collect` extras) only load for
    # the stages that build the model; summary and the tests run without them.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    t0 = time.time()
    tok.train_from_iterator(tokenizer_sample(training_texts()), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(MODEL_DIR))
    log(f"tokenizer: {len(fast)} tokens trained in {time.time() - t0:.1f}s -> {MODEL_DIR}")
