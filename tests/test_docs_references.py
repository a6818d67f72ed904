"""Every format reference points at ``docs/formats.md``, and at a section it has.

Code, help texts and docs once cited "SPEC §N" of a file that is not in the
repository; a reader could not follow them. References now name a heading of
``docs/formats.md`` (``docs/formats.md §Bundle``), and this test keeps them
followable: no old-style reference is left in a tracked file, and every
``docs/formats.md §Name`` names a real heading.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORMATS = REPO / "docs" / "formats.md"
#: Built from parts so that this file does not match itself.
OLD_STYLE = re.compile("SPEC" + r" (§|section )\d")
REFERENCE = re.compile(r"docs/formats\.md §")
SKIPPED = ("tests/golden/", "tests/test_docs_references.py")  # this file shows bad examples
BINARY = (".safetensors", ".png", ".svg", ".pt")


def _tracked_texts() -> dict[str, str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    texts = {}
    for name in listed.decode().split("\0"):
        if not name or name.startswith(SKIPPED) or name.endswith(BINARY):
            continue
        path = REPO / name
        if path.is_file():
            texts[name] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def _section(text: str, start: int, headings: set[str]) -> str | None:
    """The heading that ``text`` cites at ``start`` (longest match, whole words), if any."""
    for heading in sorted(headings, key=len, reverse=True):
        end = start + len(heading)
        if text.startswith(heading, start) and not text[end : end + 1].isalnum():
            return heading
    return None


def _headings() -> set[str]:
    return {
        m.group(1).strip()
        for m in re.finditer(r"^#{2,3} (.+)$", FORMATS.read_text(encoding="utf-8"), re.M)
    }


def test_no_tracked_file_cites_the_old_spec_sections():
    texts = _tracked_texts()
    assert "docs/formats.md" in texts
    stale = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}"
        for name, text in texts.items()
        for m in OLD_STYLE.finditer(text)
    ]
    assert not stale, f"cite docs/formats.md §<heading> instead: {stale}"


def test_every_formats_reference_names_a_heading():
    headings = _headings()
    cited, missing = 0, []
    for name, text in _tracked_texts().items():
        for m in REFERENCE.finditer(text):
            cited += 1
            if _section(text, m.end(), headings) is None:
                missing.append(f"{name}: {text[m.start() : m.end() + 30]!r}")
    assert cited >= 15  # the code, help texts and docs do cite it
    assert not missing, f"docs/formats.md has no such heading: {missing}"


def test_the_scans_find_what_they_look_for():
    """The patterns match an old-style citation and a multi-word section name."""
    assert OLD_STYLE.search("see " + "SPEC" + " §5 JSON")
    assert OLD_STYLE.search("checking " + "SPEC" + " section 1.")
    headings = _headings()
    assert {"Bundle", "Metrics", "Masks", "Evaluation results", "JSON output"} <= headings
    text = "docs/formats.md §Pruned checkpoint defines; docs/formats.md §Bundlex; §JSON output."
    starts = [m.end() for m in REFERENCE.finditer(text)]
    assert [_section(text, s, headings) for s in starts] == ["Pruned checkpoint", None]


def test_benchmark_report_is_written_for_users():
    """benchmarks/RESULTS.md cites no issue numbers or machine loans, and every section
    names the command that reproduces its numbers."""
    text = (REPO / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    assert not re.search(r"\bissue\s*#?\d", text, re.I)
    assert not re.search(r"\blent\b|can_start_another", text)
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert len(sections) >= 5
    for section in sections:
        heading = section.splitlines()[0]
        assert "Command: `python benchmarks/" in section, heading


def test_links_into_formats_md_name_its_headings():
    """Markdown links ``docs/formats.md#anchor`` land on a heading (GitHub's anchor rule)."""
    anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in _headings()}
    assert {"bundle", "json-output", "pruned-checkpoint", "evaluation-results"} <= anchors
    links = [
        (name, m.group(1))
        for name, text in _tracked_texts().items()
        for m in re.finditer(r"formats\.md#([\w-]+)", text)
    ]
    assert links
    assert not [f"{name}: #{a}" for name, a in links if a not in anchors]
