"""`pharmacrm evaluate` said "1 customers in 0.04 s": its line had no singular. Each run's line now counts its customers
in the operator's language with a plural form for the number (one form in Chinese)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import translation

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, monthly_orders, xiehe_orders

pytestmark = pytest.mark.django_db
LINE = re.compile(r": (\d+) (customers?) in \d+\.\d\d s, ")


def _counts() -> list[tuple[int, str]]:
    out = StringIO()
    with translation.override("en"):
        call_command("evaluate", "--as-of", H1_2026.isoformat(), stdout=out)
    found = [LINE.search(line) for line in out.getvalue().splitlines()]
    assert found and all(found), out.getvalue()
    return [(int(m.group(1)), m.group(2)) for m in found]


def test_one_customer_is_counted_in_the_singular_and_more_in_the_plural(import_orders, xiehe, huashan):
    import_orders(xiehe_orders(xiehe))  # one customer who bought
    counts = _counts()
    assert (1, "customer") in counts, counts
    assert all(word == ("customer" if n == 1 else "customers") for n, word in counts), counts

    import_orders(monthly_orders("SO-H", huashan))  # and a second one
    counts = _counts()
    assert (2, "customers") in counts, counts
    assert all(word == ("customer" if n == 1 else "customers") for n, word in counts), counts
