"""Write pharmacrm/customers/data/hant_fold.json: the Traditional characters that search and duplicate
detection read as their Simplified form (醫→医, 協→协, 縣→县 …), so that a zh-Hant user typing 北京協和醫院,
or a record entered in Traditional characters, finds and is found by 北京协和医院.

From OpenCC's t2s character table (opencc is a development dependency; the product ships only the JSON),
one character to one character in the main CJK block, except where folding would change what a name says:
- characters the official region list uses as they are (乾县, 乾安县: 乾 is not 干 there);
- characters whose readings share nothing with their Simplified form's (叄 cān → 叁 sān): the pinyin keys
  of a name must not change.
Run it again after upgrading opencc:

    python tools/hant_fold.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "pharmacrm" / "customers" / "data" / "hant_fold.json"
REGIONS = ROOT / "pharmacrm" / "core" / "data" / "regions.csv"


def table() -> dict[str, str]:
    import opencc
    from pypinyin import Style, pinyin

    t2s = opencc.OpenCC("t2s").convert
    with REGIONS.open(encoding="utf-8") as f:
        place_chars = {c for row in csv.DictReader(f) for c in row["name"]}

    def readings(c: str) -> set[str]:
        got = pinyin(c, style=Style.NORMAL, heteronym=True, errors=lambda _x: None)
        return set(got[0]) if got and got[0] and got[0][0] else set()

    fold = {}
    for cp in range(0x4E00, 0xA000):
        c = chr(cp)
        s = t2s(c)
        if s == c or len(s) != 1 or not 0x4E00 <= ord(s) <= 0x9FFF or c in place_chars:
            continue
        mine, theirs = readings(c), readings(s)
        if mine and theirs and not mine & theirs:
            continue
        fold[c] = s
    return fold


def main() -> None:
    fold = table()
    OUT.write_text(json.dumps({"from": "".join(fold), "to": "".join(fold.values())}, ensure_ascii=False) + "\n",
                   encoding="utf-8")  # fmt: skip
    print(f"{OUT.relative_to(ROOT)}: {len(fold)} characters")


if __name__ == "__main__":
    main()
