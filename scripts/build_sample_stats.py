"""Build ``sample_stats/``: a small GPT-OSS trained here on real multilingual text.

The stages live in ``scripts/sample_build/`` (one module each); this file is the
command that runs them. Every stage skips itself when its output exists
(``--force`` redoes it)::

    .venv/bin/python scripts/build_sample_stats.py            # all stages
    .venv/bin/python scripts/build_sample_stats.py train --steps 600
    .venv/bin/python scripts/build_sample_stats.py collect summary --force

It needs the ``collect`` and ``samples`` extras (``pip install -e ".[collect,samples]"``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make ``core`` and ``scripts`` importable
    sys.path.insert(0, str(REPO))

from scripts.sample_build.cli import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    main()
