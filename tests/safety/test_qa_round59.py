"""QA round 59 of the safety pages, as pharmacovigilance and its overseers work with them."""

from __future__ import annotations

import pytest
from lxml import html as lh


@pytest.mark.parametrize(("language", "label"), [("zh-hans", "截止日期"), ("zh-hant", "截止日期"), ("en", "To")])
def test_the_reconciliation_period_ends_at_a_date_not_at_a_mail_recipient(language, label, client_for):
    """The reconciliation's period read "获知日期起 … 收件人" (a mail's recipient): its end took the translation of
    the lower-case "to" that names where a reply was sent."""
    manager = client_for("manager")
    manager.cookies["django_language"] = language
    page = lh.fromstring(manager.get("/safety/reconciliation/").content)
    assert page.xpath("string(//label[@for='id_until'])").strip() == label
    assert "收件人" not in page.xpath("string(//form[@id='period-form'])")
