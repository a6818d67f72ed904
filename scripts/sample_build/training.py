"""Stage 3 (``train``): a small ``GptOssForCausalLM`` trained on CPU until its routers specialise.

Also the untrained twin (same seed, no steps) that the collect stage uses as a baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np

from .mix import source_weights, training_texts
from .settings import CALIBRATION_SETS, MODEL_CONFIG, MODEL_DIR, SEED, UNTRAINED_DIR, WORK
from .textio import log, read_jsonl


def build_config(vocab_size: int):
    from transformers import GptOssConfig  # lazily, like every torch-side import here

    layers = MODEL_CONFIG["num_hidden_layers"]
    return GptOssConfig(
        vocab_size=vocab_size,
        layer_types=[
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)
        ],
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **MODEL_CONFIG,
    )


def token_streams(tokenizer, texts: dict[str, list[str]]) -> dict[str, list[int]]:
    """Each source as one long token stream, documents separated by <|eos|>."""
    eos = tokenizer.eos_token_id
    streams = {}
    for name, items in texts.items():
        ids: list[int] = []
        # the backend tokenizer directly: no max-length warnings for long documents
        for enc in tokenizer.backend_tokenizer.encode_batch(items, add_special_tokens=False):
            ids += enc.ids + [eos]
        streams[name] = ids
    return streams


def stage_train(args: argparse.Namespace) -> None:
    if (MODEL_DIR / "model.safetensors").exists() and not args.force:
        log(f"train: {MODEL_DIR}/model.safetensors exists, skipping")
        return
    # Lazily: torch and transformers (the `collect` extra) load only when a model is built.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(SEED)
    random.seed(SEED)
    np.random.seed(SEED)
    if args.threads:
        torch.set_num_threads(args.threads)

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    streams = token_streams(tokenizer, training_texts())
    weights = source_weights({k: len(v) for k, v in streams.items()})
    names = sorted(weights)
    probs = np.array([weights[n] for n in names])
    arrays = {n: torch.tensor(streams[n], dtype=torch.long) for n in names}
    seq, batch = args.seq_len, args.batch_size
    rng = np.random.default_rng(SEED)

    def next_batch() -> torch.Tensor:
        rows = []
        for src in rng.choice(len(names), size=batch, p=probs):
            ids = arrays[names[src]]
            if len(ids) <= seq + 1:  # tiny source: repeat it to fill a window
                ids = ids.repeat((seq + 1) // len(ids) + 2)
            start = int(rng.integers(0, len(ids) - seq - 1))
            rows.append(ids[start : start + seq + 1])
        return torch.stack(rows)

    config = build_config(len(tokenizer))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"train: GptOssForCausalLM with {n_params / 1e6:.2f}M parameters, {len(names)} sources")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    history, t0, step = [], time.time(), 0
    for step in range(args.steps):
        if args.time_budget and time.time() - t0 > args.time_budget:
            log(f"train: time budget of {args.time_budget}s reached at step {step}")
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        ids = next_batch()
        # transformers shifts the labels itself: seq + 1 tokens give seq predictions
        out = model(input_ids=ids, labels=ids, output_router_logits=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            aux = out.aux_loss.item()
            lm = out.loss.item() - config.router_aux_loss_coef * aux
            history.append(
                {
                    "step": step,
                    "elapsed_s": round(time.time() - t0, 1),
                    "loss": round(lm, 4),
                    "aux_loss": round(aux, 4),
                    "lr": lr_at(step),
                }
            )
            log(f"train: step {step:5d}  lm loss {lm:.3f}  aux {aux:.3f}  {time.time() - t0:.0f}s")
    steps_done = step + 1 if history and history[-1]["step"] == step else step
    model.eval()
    model.save_pretrained(str(MODEL_DIR))
    tokenizer.save_pretrained(str(MODEL_DIR))
    report = {
        "parameters": n_params,
        "config": {k: v for k, v in MODEL_CONFIG.items()},
        "vocab_size": len(tokenizer),
        "steps": steps_done,
        "batch_size": batch,
        "seq_len": seq,
        "lr": args.lr,
        "seed": SEED,
        "threads": torch.get_num_threads(),
        "train_seconds": round(time.time() - t0, 1),
        "source_weights": {k: round(v, 4) for k, v in weights.items()},
        "history": history,
        "heldout_loss": heldout_loss(model, tokenizer),
    }
    (MODEL_DIR / "train_report.json").write_text(json.dumps(report, indent=2))
    log(
        f"train: done, {steps_done} steps in {report['train_seconds']}s; held-out loss {report['heldout_loss']}"
    )


def heldout_loss(model, tokenizer, per_set: int = 64, max_length: int = 256) -> dict[str, float]:
    """Mean next-token loss on the first ``per_set`` samples of each calibration set."""
    import torch

    out = {}
    with torch.no_grad():
        for name in CALIBRATION_SETS:
            path = WORK / "corpora" / "calibration" / f"{name}.jsonl"
            total, count = 0.0, 0
            for text in read_jsonl(path)[:per_set]:
                ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")[
                    "input_ids"
                ]
                if ids.shape[1] < 2:
                    continue
                loss = model(input_ids=ids, labels=ids).loss
                total += float(loss) * (ids.shape[1] - 1)
                count += ids.shape[1] - 1
            out[name] = round(total / max(count, 1), 3)
    return out


def save_untrained() -> Path:
    """The same architecture at its (seeded) initialisation: what training starts from."""
    if (UNTRAINED_DIR / "model.safetensors").exists():
        return UNTRAINED_DIR
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(build_config(len(tokenizer)), dtype=torch.float32)
    model.eval()
    model.save_pretrained(str(UNTRAINED_DIR))
    tokenizer.save_pretrained(str(UNTRAINED_DIR))
    return UNTRAINED_DIR
