"""Print the README's MoE family tables from core.families, or rewrite them in place.

    python scripts/family_tables.py            # print the three tables
    python scripts/family_tables.py --write    # regenerate them in README.md

The tables sit in README.md between ``<!-- families:KIND ... -->`` markers;
``tests/core/families/test_tables.py`` fails when they differ from the adapters.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.families.tables import KINDS, markdown_table, replace_tables  # noqa: E402
from core.io.atomic import atomic_write_text  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        atomic_write_text(README, replace_tables(README.read_text(encoding="utf-8")))
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    for kind in KINDS:
        print(f"{kind}:\n{markdown_table(kind)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
