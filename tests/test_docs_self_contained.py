"""The docs are the reference: nothing points to a specification kept outside."""
from __future__ import annotations

import re

from conftest import REPO


def test_no_pointer_to_an_outside_specification():
    files = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "grammar").glob("*.md"),
             *(REPO / "datamake").rglob("*.py")]
    hits = [f"{f.relative_to(REPO)}:{n}" for f in files
            for n, line in enumerate(f.read_text().splitlines(), 1)
            if re.search(r"\bSPEC\b|SPEC\.md", line)]
    assert hits == []
