"""Pinyin order (拼音排序) of the short reference lists a user picks from: products, teams, courses, competitor
products. Chinese users look for 安心宁 under a, before 宁咳 under n; the code-point order the database sorts names
in puts 宁 (U+5B81) before 安 (U+5B89). Customers sort by a `name_key` column (tens of thousands of names); these
lists are short, so they are read once and sorted here with the same key (customers.readings.name_key), by what the
user reads: the option's label."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from django import forms
from django.forms.models import ModelChoiceIterator

T = TypeVar("T")


def pinyin_key(text: object) -> str:
    """The sort key that puts `text` in pinyin order, as customers' names are (their `name_key`)."""
    from pharmacrm.customers.readings import name_key

    return name_key(str(text or ""))


def pinyin_sorted(items: Iterable[T], label: Callable[[T], object] = str) -> list[T]:
    """`items` in the pinyin order of their labels (what the user reads: str(item) unless told); ties keep their order."""
    return sorted(items, key=lambda item: pinyin_key(label(item)))


class PinyinChoiceIterator(ModelChoiceIterator):
    """A model choice's options in the pinyin order of their labels, from the one query the field makes."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        objects = list(self.queryset)
        for obj in pinyin_sorted(objects, self.field.label_from_instance):
            yield self.choice(obj)


class PinyinModelChoiceField(forms.ModelChoiceField):
    """A choice of one record (a product, a team) offered in pinyin order."""

    iterator = PinyinChoiceIterator


class PinyinModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A choice of several records (products, teams) offered in pinyin order."""

    iterator = PinyinChoiceIterator
