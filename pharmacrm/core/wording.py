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
    separator = "、" if (translation.get_language() or "zh-hans").startswith("zh") else ", "
    return separator.join(str(item) for item in items)


def company_name() -> tuple[str, str]:
    """The company's name in Chinese and in English (agreements, the personal information notice)."""
    zh = getattr(settings, "PHARMACRM_COMPANY_NAME", "") or COMPANY_NAME
    en = getattr(settings, "PHARMACRM_COMPANY_NAME_EN", "") or COMPANY_NAME_EN
    return zh, en
