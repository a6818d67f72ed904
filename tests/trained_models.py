"""A tiny GPT-OSS briefly trained on four synthetic "domains", so its routers mean something.

A random model's loss is ~log(vocab) whatever experts it keeps, so "the mass
mask hurts less than a random mask" would be a coin flip on it. After 150
AdamW steps on English-like sentences, code lines, number lists and Spanish
sentences (a few seconds on 2 cores) the loss is ~0.9 nats and experts
matter: dropping the wrong ones costs ~1 nat. Everything is seeded; the data
is generated, not downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DOMAINS = ("en", "code", "num", "es")


def domain_texts(seed: int, n: int) -> dict[str, list[str]]:
    """``n`` generated samples of each domain."""
    rng = np.random.default_rng(seed)
    nouns = [
        "fox",
        "dog",
        "cat",
        "bird",
        "model",
        "router",
        "expert",
        "token",
        "layer",
        "river",
        "city",
        "garden",
    ]
    verbs = [
        "jumps",
        "runs",
        "sees",
        "finds",
        "routes",
        "keeps",
        "drops",
        "likes",
        "follows",
        "builds",
    ]
    adjs = ["quick", "lazy", "brown", "small", "large", "sparse", "dense", "bright", "quiet", "old"]

    def en() -> str:
        return (
            f"The {rng.choice(adjs)} {rng.choice(nouns)} {rng.choice(verbs)} "
            f"the {rng.choice(adjs)} {rng.choice(nouns)}."
        )

    def code() -> str:
        return (
            f"for {rng.choice(list('ijk'))} in range({rng.integers(2, 99)}): "
            f"total += {rng.choice(list('xyz'))} * {rng.integers(2, 9)}"
        )

    def num() -> str:
        return " ".join(str(rng.integers(0, 1000)) for _ in range(rng.integers(4, 9)))

    def es() -> str:
        return (
            f"El {rng.choice(['zorro', 'perro', 'gato', 'pájaro'])} "
            f"{rng.choice(['rápido', 'perezoso', 'marrón', 'pequeño'])} salta sobre el "
            f"{rng.choice(['río', 'campo', 'jardín'])}."
        )

    makers = {"en": en, "code": code, "num": num, "es": es}
    return {name: [makers[name]() for _ in range(n)] for name in DOMAINS}


def write_texts(path: Path, texts: list[str]) -> Path:
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def train_tiny_gpt_oss(folder: Path, seed: int = 0, steps: int = 150) -> Path:
    """Build the tiny GPT-OSS of ``tests.tiny_models`` in ``folder`` and train it in place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.tiny_models import build_tiny_model

    build_tiny_model("gpt_oss", folder, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    texts = [t for group in domain_texts(100 + seed, 200).values() for t in group]
    ids = [tokenizer(t)["input_ids"][:48] for t in texts]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    batch = 16
    for _ in range(steps):
        pick = rng.choice(len(ids), batch, replace=False)
        longest = max(len(ids[i]) for i in pick)
        x = torch.zeros((batch, longest), dtype=torch.long)
        mask = torch.zeros((batch, longest), dtype=torch.long)
        for row, i in enumerate(pick):
            x[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        loss = model(input_ids=x, attention_mask=mask, labels=x.masked_fill(mask == 0, -100)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    return folder
