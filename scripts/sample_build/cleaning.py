"""Cleaning and splitting text: wiki markup to paragraphs, prose to chunks, the held-out split.

The split decides which text is never trained on, so it lives in one function
(``split``) that every source goes through.
"""

from __future__ import annotations

import html
import re

from .settings import HOLDOUT_EVERY


def held_out(index: int, every: int = HOLDOUT_EVERY) -> bool:
    return index % every == every - 1


def split(items: list, every: int = HOLDOUT_EVERY) -> tuple[list, list]:
    """(train, held-out): every ``every``-th distinct item is held out.

    Repeats are dropped first (the first occurrence is kept): a corpus that repeats a
    text (chatterbot repeats whole conversations) would otherwise put the same text on
    both sides of the split, and an "held-out" evaluation would score training text.
    """
    firsts: dict = {}
    for item in items:  # a source file is a list of chunks: compare it as a tuple
        firsts.setdefault(tuple(item) if isinstance(item, list) else item, item)
    distinct = list(firsts.values())
    train = [x for i, x in enumerate(distinct) if not held_out(i, every)]
    test = [x for i, x in enumerate(distinct) if held_out(i, every)]
    return train, test


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


def interleave(sets: list[list[str]]) -> list[str]:
    """Round-robin over several lists until all are exhausted."""
    out = []
    for i in range(max(len(s) for s in sets)):
        out += [s[i] for s in sets if i < len(s)]
    return out
