"""The licence each source wheel declares, recorded in the corpus manifest."""

from __future__ import annotations

import re
import zipfile


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
