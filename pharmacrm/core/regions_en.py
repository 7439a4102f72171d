"""Region names in English, for English readers: the provinces' official English names (Beijing, Inner Mongolia,
Hong Kong SAR), every other division romanised in pinyin with its administrative suffix in English (朝阳区 is
Chaoyang District, 延边朝鲜族自治州 Yanbian Korean Autonomous Prefecture). `region_label` shows them; the import
reads them back."""

from __future__ import annotations

import csv
import functools
import re

from .setup import REGIONS_CSV, region_full_names

PROVINCES = {
    "110000": "Beijing", "120000": "Tianjin", "130000": "Hebei", "140000": "Shanxi", "150000": "Inner Mongolia",
    "210000": "Liaoning", "220000": "Jilin", "230000": "Heilongjiang", "310000": "Shanghai", "320000": "Jiangsu",
    "330000": "Zhejiang", "340000": "Anhui", "350000": "Fujian", "360000": "Jiangxi", "370000": "Shandong",
    "410000": "Henan", "420000": "Hubei", "430000": "Hunan", "440000": "Guangdong", "450000": "Guangxi",
    "460000": "Hainan", "500000": "Chongqing", "510000": "Sichuan", "520000": "Guizhou", "530000": "Yunnan",
    "540000": "Tibet", "610000": "Shaanxi", "620000": "Gansu", "630000": "Qinghai", "640000": "Ningxia",
    "650000": "Xinjiang", "710000": "Taiwan", "810000": "Hong Kong SAR", "820000": "Macao SAR",
}  # fmt: skip

# the list's placeholders for a level it does not have (a municipality's districts, a province's county-level
# cities directly under it)
PLACEHOLDERS = {
    "市辖区": "Municipal districts",
    "县": "Counties",
    "直辖县": "Directly administered counties",
    "省直辖县级行政区划": "County-level divisions under the province",
    "自治区直辖县级行政区划": "County-level divisions under the autonomous region",
}

# the suffixes of the names, longest first (自治县 before 县)
SUFFIXES = (
    ("自治州", "Autonomous Prefecture"), ("自治县", "Autonomous County"), ("自治旗", "Autonomous Banner"),
    ("林区", "Forestry District"), ("新区", "New Area"), ("特区", "Special District"), ("地区", "Prefecture"),
    ("市", "City"), ("区", "District"), ("县", "County"), ("旗", "Banner"), ("盟", "League"),
)  # fmt: skip

# the peoples an autonomous division is named after, in their official English names
PEOPLES = {
    "蒙古": "Mongol", "回": "Hui", "藏": "Tibetan", "维吾尔": "Uygur", "苗": "Miao", "彝": "Yi", "壮": "Zhuang",
    "布依": "Bouyei", "朝鲜": "Korean", "满": "Manchu", "侗": "Dong", "瑶": "Yao", "白": "Bai", "土家": "Tujia",
    "哈尼": "Hani", "哈萨克": "Kazak", "傣": "Dai", "黎": "Li", "傈僳": "Lisu", "佤": "Va", "畲": "She",
    "拉祜": "Lahu", "水": "Shui", "东乡": "Dongxiang", "纳西": "Naxi", "景颇": "Jingpo", "柯尔克孜": "Kirgiz",
    "土": "Tu", "达斡尔": "Daur", "仫佬": "Mulao", "羌": "Qiang", "布朗": "Blang", "撒拉": "Salar", "毛南": "Maonan",
    "仡佬": "Gelao", "锡伯": "Xibe", "普米": "Pumi", "塔吉克": "Tajik", "怒": "Nu", "鄂温克": "Ewenki",
    "保安": "Bonan", "裕固": "Yugur", "独龙": "Derung", "鄂伦春": "Oroqen", "各": "Multi-ethnic",
}  # fmt: skip
# written without 族 in some names (博尔塔拉蒙古自治州, 伊犁哈萨克自治州): read so only at the end of one
_BARE_PEOPLES = ("柯尔克孜", "哈萨克", "塔吉克", "鄂伦春", "蒙古", "锡伯")


def pinyin(text: str) -> str:
    """A place name in pinyin, as one capitalised word: 朝阳 is Chaoyang, 西安 Xi'an, 绿春 Lüchun."""
    from pharmacrm.customers.pinyin import Style, lazy_pinyin

    out = ""
    for syllable in lazy_pinyin(text, style=Style.NORMAL, v_to_u=True):
        if out and syllable[:1] in ("a", "o", "e") and out[-1:].isalpha():
            out += "'"  # a syllable starting with a vowel is marked off (Xi'an, not Xian)
        out += syllable
    return out[:1].upper() + out[1:]


def _peoples(stem: str) -> tuple[str, list[str]]:
    """The place and the peoples of an autonomous division's name: 恩施土家族苗族 is (恩施, [Tujia, Miao])."""
    peoples: list[str] = []
    while stem.endswith("族"):
        head = stem[:-1]
        match = next((p for p in sorted(PEOPLES, key=len, reverse=True) if head.endswith(p) and len(head) > len(p)),
                     None)  # fmt: skip
        if match is None:
            break
        peoples.insert(0, PEOPLES[match])
        stem = head[: -len(match)]
    if not peoples:
        bare = next((p for p in _BARE_PEOPLES if stem.endswith(p) and len(stem) > len(p)), None)
        if bare:
            peoples, stem = [PEOPLES[bare]], stem[: -len(bare)]
    return stem, peoples


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def english_name(code: str, name: str) -> str:
    """The English name of a region: the province's official one, or the name in pinyin with its suffix in
    English."""
    if code in PROVINCES:
        return PROVINCES[code]
    if name in PLACEHOLDERS:
        return PLACEHOLDERS[name]
    for suffix, english in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            if suffix.startswith("自治"):
                stem, peoples = _peoples(stem)
                if peoples:
                    return f"{pinyin(stem)} {_joined(peoples)} {english}"
            return f"{pinyin(stem)} {english}"
    return pinyin(name)


@functools.cache
def english_region_names() -> tuple[dict[str, str], dict[str, str]]:
    """(name, full name) of every region code in English; a full name from the smallest division up, as English
    writes an address: Chaoyang District, Beijing."""
    rows = list(csv.DictReader(REGIONS_CSV.open(encoding="utf-8")))
    names = {r["code"]: english_name(r["code"], r["name"]) for r in rows}
    return names, region_full_names(rows, names, lambda parts: ", ".join(dict.fromkeys(parts)))


def english_key(text: str) -> str:
    """An English region name as the import compares it: in lower case, without spaces, hyphens or apostrophes
    (Xi'an District is xiandistrict), ü read as u or v."""
    text = text.lower().replace("ü", "v").replace("u:", "v")
    return re.sub(r"[\s'’\-_.,]+", "", text)
