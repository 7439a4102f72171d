"""The credit gate in a customer's history of evaluations: the Customer 360 block and the drill-down listed the older
periods with their class alone — a period the gate capped read "B" as if the score had earned it, with neither the
class the score gives nor why (only the latest period said it). Every period now shows them, in the reader's
language, as the latest one and the results page do (eval_gate.html).

华山 buys as in test_credit_gate (24 orders of ¥40,000, 2025-07 … 2026-06, paid on time) and owes SO-OLD, ¥150,000
ordered 2026-01-05, due 2026-02-04: unpaid on 2026-06-30, so 2026H1 (as of that day) is capped at B — A by its score.
The debt is paid on 2026-07-10; on 2026-07-15 the half-year under way, 2026H2, is scored: class A, no gate."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, line
from .test_credit_gate import LANGUAGES, monthly_orders

pytestmark = pytest.mark.django_db
GIVES = {"en": "score gives A", "zh-hans": "得分为 A 类", "zh-hant": "得分為 A 類"}


def _words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _old_debt(customer, **paid) -> dict:
    return line("SO-OLD", 1, "2026-01-05", customer, "P9", 1, "150000", payment_due="2026-02-04", **paid)


@pytest.fixture
def two_periods(monkeypatch, import_orders, huashan, users):
    """(2026H1 capped, 2026H2 not): the calendar on 2026-06-30 for the first run, on 2026-07-15 for the second."""
    real = timezone.localdate
    day = {"today": H1_2026}
    monkeypatch.setattr(
        timezone, "localdate", lambda value=None, tz=None: day["today"] if value is None else real(value, tz)
    )
    import_orders(monthly_orders("SO-H", huashan) + [_old_debt(huashan)])
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    day["today"] = dt.date(2026, 7, 15)
    import_orders([_old_debt(huashan, paid_date="2026-07-10")])
    evaluation.run(ModelKind.EVALUATION)
    capped = Score.objects.get(institution=huashan, kind=ModelKind.EVALUATION, period="2026H1")
    latest = Score.objects.get(institution=huashan, kind=ModelKind.EVALUATION, period="2026H2")
    assert (capped.klass, capped.class_before_gate, latest.klass, latest.gate) == ("B", "A", "A", None)
    return capped, latest


def _row(html: str, period: str) -> str:
    """The history table's row of `period` (the block's rows carry no data attribute: found by the period's link)."""
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, re.S)
    return next(r for r in rows if re.search(rf">\s*(<strong>)?{period}(</strong>)?\s*<", r))


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_the_customer_blocks_history_shows_an_older_periods_capped_class_and_why(
    two_periods, huashan, client_for, lang
):
    capped, latest = two_periods
    html = client_for("kam").get(
        reverse("keyaccounts:eval-panel", args=[huashan.pk]), HTTP_ACCEPT_LANGUAGE=lang
    )
    html = html.content.decode()
    older = _words(_row(html.split("<tbody>")[1], "2026H1"))
    assert 'class="klass klass-B"' in _row(html.split("<tbody>")[1], "2026H1")
    assert GIVES[lang] in older and LANGUAGES[lang] in older
    newer = _words(_row(html.split("<tbody>")[1], "2026H2"))
    assert GIVES[lang] not in newer and LANGUAGES[lang] not in newer  # not capped: nothing beside its class
    # the period in force (2026H1, beside the interim standing) says it the same way
    in_force = _words(re.search(r'id="eval-in-force".*?</p>', html, re.S).group(0))
    assert GIVES[lang] in in_force and LANGUAGES[lang] in in_force


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_the_drill_downs_history_shows_an_older_periods_capped_class_and_why(two_periods, client_for, lang):
    capped, latest = two_periods
    html = (
        client_for("kam")
        .get(reverse("keyaccounts:score", args=[latest.pk]), HTTP_ACCEPT_LANGUAGE=lang)
        .content.decode()
    )
    history = re.search(r'<table class="table compact score-history">.*?</table>', html, re.S).group(0)
    older = re.search(r'<tr data-period="2026H1">.*?</tr>', history, re.S).group(0)
    assert (
        'class="klass klass-B"' in older and GIVES[lang] in _words(older) and LANGUAGES[lang] in _words(older)
    )
    newer = re.search(r'<tr aria-current="true" data-period="2026H2">.*?</tr>', history, re.S).group(0)
    assert LANGUAGES[lang] not in _words(newer)
    # the capped period's own page says it too, above, as before
    page = _words(client_for("kam").get(reverse("keyaccounts:score", args=[capped.pk]),
                                        HTTP_ACCEPT_LANGUAGE=lang).content.decode())  # fmt: skip
    assert LANGUAGES[lang] in page


def test_the_results_page_of_an_older_period_shows_its_capped_class_and_why(two_periods, client_for):
    html = client_for("analyst").get(reverse("keyaccounts:evaluations"), {"period": "2026H1", "klass": "B"},
                                     HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()  # fmt: skip
    row = _words(re.search(r'<tr class="eval-row".*?</tr>', html, re.S).group(0))
    assert GIVES["zh-hans"] in row and LANGUAGES["zh-hans"] in row
