"""Stage 1b: read the raw text straight out of the wheels (and this interpreter's stdlib).

Nothing from a wheel is ever run: spaCy's ``examples.py`` files are parsed with ``ast``.
"""

from __future__ import annotations

import ast
import bz2
import hashlib
import io
import re
import sys
import sysconfig
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from .cleaning import clean_wikitext
from .settings import CHATTERBOT_LANGS


def news_documents(zf: zipfile.ZipFile) -> list[str]:
    docs = []
    for name in ("gensim/test/test_data/lee_background.cor", "gensim/test/test_data/lee.cor"):
        text = zf.read(name).decode("utf-8", "replace")
        docs += [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return docs


def wiki_articles(zf: zipfile.ZipFile) -> list[str]:
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
    import yaml  # lazily: only this stage reads YAML (the `samples` extra)

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
