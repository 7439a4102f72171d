"""How names read: pinyin syllables (phrase-aware for institutions, surname-aware for people) for the search
index, and the sort key that puts names in pinyin order (拼音排序), as Chinese users expect a list sorted by name:
阿 a, 安 an, 北京 bei jing, 长沙 chang sha … rather than in the order of the characters' code points."""

from __future__ import annotations

import re
from functools import lru_cache

from . import normalise
from .pinyin import Style, lazy_pinyin

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
NAME_KEY_LENGTH = 300  # the column's length: the readings, then the name itself


@lru_cache(maxsize=200_000)
def syllables(norm_name: str) -> tuple[str, ...]:
    """One pinyin syllable per character (phrase-aware for polyphones: 重庆 → chong qing)."""
    out = lazy_pinyin(norm_name, style=Style.NORMAL, errors=lambda s: list(s))
    if len(out) != len(norm_name):  # defensive: fall back to per-character conversion
        out = [lazy_pinyin(c, style=Style.NORMAL, errors=lambda s: list(s))[0] for c in norm_name]
    return tuple(s.lower() for s in out)


# Polyphonic characters read differently as surnames (曾 zeng, not ceng): a person's name is read with them, and
# indexed with their common reading too (a user who does not know the surname's reading types that one).
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "朴": "piao", "查": "zha", "区": "ou", "缪": "miao",
    "覃": "qin", "盖": "ge", "乐": "yue", "尉": "yu", "秘": "bi", "种": "chong", "翟": "zhai", "万": "wan",
    "沈": "shen", "卜": "bu", "繁": "po", "员": "yun", "能": "nai", "句": "gou", "长": "chang", "重": "chong",
    "黑": "he", "召": "shao", "阚": "kan", "隗": "wei", "都": "du", "粘": "nian", "佴": "nai", "薄": "bo",
    "颉": "xie", "折": "she", "洗": "xian", "祭": "zhai", "蕃": "pi",
}  # fmt: skip
# Two-character surnames read otherwise than their characters (长孙 zhang sun, 万俟 mo qi, 尉迟 yu chi).
COMPOUND_SURNAME_READINGS = {
    "长孙": ("zhang", "sun"), "万俟": ("mo", "qi"), "尉迟": ("yu", "chi"), "单于": ("chan", "yu"),
    "澹台": ("tan", "tai"), "乐正": ("yue", "zheng"),
}  # fmt: skip
# pinyin's ü as pypinyin spells it (吕 lv, 略 lve, 女 nv): input methods accept it typed as u too (lu, lue, nu)
_U_SYLLABLES = {"lv": "lu", "lve": "lue", "nv": "nu", "nve": "nue"}
_U_KEYS = frozenset(_U_SYLLABLES)


@lru_cache(maxsize=50_000)
def _char_reading(char: str) -> str:
    return lazy_pinyin(char, style=Style.NORMAL, errors=lambda s: list(s))[0].lower()


def person_syllables(norm_name: str) -> tuple[str, ...]:
    """Per-character readings with surname readings for the first character (or the first two: 长孙 zhang sun): a
    person's name has no phrase context, and this is ~20x faster than phrase segmentation on a million-row import."""
    if not norm_name:
        return ()
    compound = COMPOUND_SURNAME_READINGS.get(norm_name[:2])
    if compound:
        return (*compound, *(_char_reading(c) for c in norm_name[2:]))
    first = SURNAME_READINGS.get(norm_name[0]) or _char_reading(norm_name[0])
    return (first, *(_char_reading(c) for c in norm_name[1:]))


def other_readings(syl: tuple[str, ...], common: tuple[str, ...] | None = None) -> list[tuple[str, ...]]:
    """The readings besides `syl` that a search should also find a name by: `common` (its characters' common
    readings, when the name's reading differs: a surname's), and each of the two with ü typed as u (吕 lv and lu).
    Empty for most names: only the names that need them get more index rows."""
    found = [syl] if common is None or common == syl else [syl, common]
    for reading in found[:]:
        if not _U_KEYS.isdisjoint(reading):
            found.append(tuple(_U_SYLLABLES.get(s, s) for s in reading))
    return found[1:]


def person_readings(norm_name: str) -> list[tuple[str, ...]]:
    """A person's reading (person_syllables) first, then the other readings a search finds them by."""
    syl = person_syllables(norm_name)
    if not syl:
        return []
    special = norm_name[0] in SURNAME_READINGS or norm_name[:2] in COMPOUND_SURNAME_READINGS
    if not special and _U_KEYS.isdisjoint(syl):
        return [syl]  # most names: one reading
    common = tuple(_char_reading(c) for c in norm_name) if special else None
    return [syl, *other_readings(syl, common)]


@lru_cache(maxsize=50_000)
def name_key(name: str, person: bool = False) -> str:
    """The name's sort key: its reading, one word per character read as pinyin (people with their surname's
    reading: 曾 zeng), other characters (Latin letters, digits) kept as written words, lower-case; then
    U+0001 and the normalised name, so that names read alike (张伟, 章伟) sort by their characters and the
    same name together. Compared byte by byte (the column is COLLATE "C" on PostgreSQL): the space between
    syllables sorts before every letter, so 阿姨 (a yi) comes before 安 (an), as in a dictionary."""
    norm = normalise.name(name)
    if not norm:
        return ""
    readings = person_syllables(norm) if person else syllables(norm)
    words: list[str] = []
    latin = False  # whether the last word is a run of other characters, which the next one joins
    for char, reading in zip(norm, readings, strict=False):
        if _CJK.match(char):
            words.append(reading)
            latin = False
        elif latin:
            words[-1] += reading
        else:
            words.append(reading)
            latin = True
    reading = " ".join(words)[: NAME_KEY_LENGTH - 2]
    return (reading + "\x01" + norm)[:NAME_KEY_LENGTH]
