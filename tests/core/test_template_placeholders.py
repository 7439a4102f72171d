"""A search box's hint (its placeholder) written into a template as text reached every reader in that one language:
the product catalogue's read 安心宁 / 氨氯地平 / 国药准字H… on the English pages. Each placeholder in the templates goes
through the catalogue ({% translate %}) or comes from the view; only one without words (a URL's scheme) is as typed."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "pharmacrm" / "templates"
PLACEHOLDER = re.compile(r"""\splaceholder\s*=\s*(?:"([^"]*)"|'([^']*)')""")
TRANSLATED = re.compile(r"^\s*(\{%\s*(translate|trans|blocktranslate|blocktrans)\s.*%\}|\{\{.*\}\})\s*$", re.S)
NO_WORDS = re.compile(r"^(https?://|[\W\d_]*)$")


def test_every_placeholder_in_the_templates_is_translated():
    untranslated = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for match in PLACEHOLDER.finditer(text):
            value = match.group(1) if match.group(1) is not None else match.group(2)
            if not (TRANSLATED.match(value) or NO_WORDS.match(value)):
                line = text.count("\n", 0, match.start()) + 1
                untranslated.append(f"{path.relative_to(TEMPLATES)}:{line}: {value}")
    assert untranslated == []


def test_the_check_finds_a_placeholder_typed_as_text():
    assert not TRANSLATED.match("安心宁 / 氨氯地平") and not NO_WORDS.match("安心宁 / 氨氯地平")
    assert not NO_WORDS.match("Name or phone")
    assert TRANSLATED.match("{% translate 'Type to find…' %}") and NO_WORDS.match("https://")
