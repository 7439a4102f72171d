"""Django's {# … #} comment ends at the end of its line: one spread over two lines is sent to the browser as
text. QA found such a developer's note on top of every public page (the customer's survey and web form)."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "pharmacrm" / "templates"


def test_no_template_has_a_comment_spread_over_lines():
    broken = []
    for path in sorted(TEMPLATES.rglob("*.html")) + sorted(TEMPLATES.rglob("*.txt")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(r"\{#(?!.*#\})", line):
                broken.append(f"{path.relative_to(TEMPLATES)}:{number}")
    assert broken == []


def test_the_public_pages_carry_no_template_comment(client, db):
    page = client.get("/help/").content.decode()
    assert "{#" not in page and "same-origin: the signed link" not in page
