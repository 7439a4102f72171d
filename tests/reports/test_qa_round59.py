"""QA round 59: the scheduled reports' page as a service manager reads it."""

from __future__ import annotations

import pytest
from django.utils import translation
from lxml import html as lh


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_how_often_a_report_is_mailed_is_not_a_dosing_frequency(language, client_for, users):
    """The scheduled reports' form and list headed their frequency 给药频次 / 給藥頻次 — a drug's dosing frequency
    on a safety case, the translation of the bare "Frequency" — and so did the audit trail's label."""
    from pharmacrm.core.templatetags.crm import field_label
    from pharmacrm.reports import services
    from pharmacrm.reports.models import ReportSubscription

    users["manager"].email = "li@example.com"
    users["manager"].save(update_fields=["email"])
    services.subscribe(users["manager"], {"report": "service_performance", "frequency": "month"})
    manager = client_for("manager")
    manager.cookies["django_language"] = language
    page = lh.fromstring(manager.get("/reports/").content)
    with translation.override(language):
        expected = translation.pgettext("report schedule", "Frequency")
        dosing = translation.gettext("Frequency")
        audit_label = field_label(ReportSubscription, "frequency")
    assert dosing in ("给药频次", "給藥頻次")  # the safety case's drug keeps its word
    assert page.xpath("string(//label[@for='id_frequency'])").strip() == expected
    assert dosing not in page.xpath("string(//main)")
    assert "给药" not in audit_label and "給藥" not in audit_label


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_the_button_that_stops_a_scheduled_report_is_not_a_stop_date(language, client_for, users):
    """The button that ends a subscription read 停止时间 / 停止時間 ("stop date", a drug's on a safety case)."""
    from pharmacrm.reports import services

    users["manager"].email = "li@example.com"
    users["manager"].save(update_fields=["email"])
    services.subscribe(users["manager"], {"report": "service_performance", "frequency": "month"})
    manager = client_for("manager")
    manager.cookies["django_language"] = language
    page = lh.fromstring(manager.get("/reports/").content)
    with translation.override(language):
        expected = translation.pgettext("report subscription", "Stop")
        stop_date = translation.gettext("Stop")
    assert stop_date in ("停止时间", "停止時間")  # the drug's stop date keeps its word
    assert page.xpath("string(//button[@value='delete'])").strip() == expected
