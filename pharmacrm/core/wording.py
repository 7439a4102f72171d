"""Small pieces of wording that depend on the reader's language."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import translation


def listing(items: Iterable) -> str:
    """Items of a list in running text: 心内科、肿瘤科 in Chinese, "Cardiology, Oncology" in English."""
    separator = "、" if (translation.get_language() or "zh-hans").startswith("zh") else ", "
    return separator.join(str(item) for item in items)
