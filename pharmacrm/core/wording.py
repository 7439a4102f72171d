"""Small pieces of wording that depend on the reader's language."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.utils import translation

# the company's names where none is configured (PHARMACRM_COMPANY_NAME, PHARMACRM_COMPANY_NAME_EN): the demo's
COMPANY_NAME = "PharmaCRM 制药有限公司"
COMPANY_NAME_EN = "PharmaCRM Pharmaceutical Co., Ltd."


def listing(items: Iterable) -> str:
    """Items of a list in running text: 心内科、肿瘤科 in Chinese, "Cardiology, Oncology" in English."""
    return separator().join(str(item) for item in items)


def separator() -> str:
    """What comes between the items of a list in running text: "、" in Chinese, ", " in English."""
    return "、" if (translation.get_language() or "zh-hans").startswith("zh") else ", "


def _chinese() -> bool:
    return (translation.get_language() or "zh-hans").startswith("zh")


def colon() -> str:
    """What follows a label before its value: "：" in Chinese (类别：用药错误), ": " in English."""
    return "：" if _chinese() else ": "


def sentence_gap() -> str:
    """Between two sentences of running text: nothing after a Chinese full stop (暂无重点客户。请从……), a space after an
    English one ("No key accounts here yet. Propose …")."""
    return "" if _chinese() else " "


def clauses(items: Iterable) -> str:
    """Phrases one after another, each of which may hold a comma: 每回款 100 元积分 ×1；奖励目录 in Chinese (the
    full-width semicolon), "Points ×1 per ¥100 paid; Reward catalogue" in English."""
    return ("；" if _chinese() else "; ").join(str(item) for item in items)


def aside(text) -> str:
    """A remark after a value, in brackets: 4.33（6 份调查问卷） in Chinese, full-width and unspaced, "4.33 (6 surveys)"
    in English."""
    return f"（{text}）" if _chinese() else f" ({text})"


def labelled(pairs: Iterable[tuple]) -> str:
    """Labelled values in running text: 科室：研发部；意见：支持 in Chinese, "Department: R&D; Opinion: Support" in
    English (full-width punctuation between Chinese words, as the rest of a Chinese page has it)."""
    colon, semicolon = ("：", "；") if _chinese() else (": ", "; ")
    return semicolon.join(f"{label}{colon}{value}" for label, value in pairs)


def company_name() -> tuple[str, str]:
    """The company's name in Chinese and in English (agreements, the personal information notice)."""
    zh = getattr(settings, "PHARMACRM_COMPANY_NAME", "") or COMPANY_NAME
    en = getattr(settings, "PHARMACRM_COMPANY_NAME_EN", "") or COMPANY_NAME_EN
    return zh, en
