"""Write pharmacrm/customers/data/pinyin_phrases.json: the phrases of pypinyin's phrase dictionary whose
reading differs from the characters' default readings (重庆 chóng qìng, 银行 yín háng …).

pypinyin's full phrase dictionary costs a web worker about 44 MiB; PharmaCRM loads only these phrases
(pharmacrm/customers/pinyin.py). Names read as well or better: of the 100,000 benchmark institution names,
1,985 read differently, each where the full dictionary was wrong — 朝阳 read zhāo yáng (1,167; see
OVERRIDES) and 长 in …州长江路 cut as 州长 "governor" (818). Run it again after upgrading pypinyin:

    python tools/pinyin_phrases.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "pharmacrm" / "customers" / "data" / "pinyin_phrases.json"
# readings customer names need where pypinyin lists another first: 朝阳 is the district and the road (cháo),
# not the morning sun (zhāo)
OVERRIDES = {
    "朝阳": [["cháo"], ["yáng"]],
    # place names pypinyin reads with the character's everyday sound (长治 is not zhǎng zhì)
    "长治": [["cháng"], ["zhì"]], "单县": [["shàn"], ["xiàn"]], "涡阳": [["guō"], ["yáng"]],
    "洪洞": [["hóng"], ["tóng"]], "筠连": [["jūn"], ["lián"]], "郫都": [["pí"], ["dū"]], "漯河": [["luò"], ["hé"]],
    "浚县": [["xùn"], ["xiàn"]],
}


def compact() -> dict[str, list[list[str]]]:
    from pypinyin import phrases_dict, pinyin_dict

    def default(char: str) -> str | None:
        readings = pinyin_dict.pinyin_dict.get(ord(char))
        return readings.split(",")[0] if readings else None

    keep = {}
    for phrase, readings in phrases_dict.phrases_dict.items():
        if len(readings) != len(phrase) or any(r[0] != default(c) for r, c in zip(readings, phrase, strict=True)):
            keep[phrase] = readings
    keep.update(OVERRIDES)
    return dict(sorted(keep.items()))


if __name__ == "__main__":
    data = compact()
    OUT.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{len(data):,} phrases written to {OUT}")
