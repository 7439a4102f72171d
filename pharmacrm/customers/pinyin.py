"""pypinyin with a compact phrase dictionary: every import of pypinyin in PharmaCRM goes through here.

pypinyin's full phrase dictionary costs each process about 44 MiB, most of a web worker's budget. Only the
phrases whose reading differs from their characters' default readings change a result (重庆 chóng qìng,
not zhòng qìng), so PharmaCRM ships those (data/pinyin_phrases.json, made by tools/pinyin_phrases.py) and
loads them instead (names read as well or better, see the tool); tests/customers/test_pinyin.py checks it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# read by pypinyin when it is first imported: skip its own phrase dictionary and the copy it makes
os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")
os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "1")

from pypinyin import Style, lazy_pinyin, load_phrases_dict  # noqa: E402
from pypinyin.constants import PHRASES_DICT  # noqa: E402

PHRASES = Path(__file__).parent / "data" / "pinyin_phrases.json"

if len(PHRASES_DICT) < 1000:  # pypinyin came up without its dictionary: load ours once
    load_phrases_dict(json.loads(PHRASES.read_text(encoding="utf-8")))

__all__ = ["Style", "lazy_pinyin"]
