"""Customers' consent records and imports on the audit page read in the reader's language, whoever acted: their
entries were named by str() in the actor's language ("Satisfaction surveys · Given", "People · p.csv") and the import
of the sales-target grid showed what it imported as the code "sales targets" to every reader. The entries keep codes
and the file's name; the page labels them when it is read. Entries written before keep their recorded name unless
their changes hold the codes; the chain still verifies."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Person

pytestmark = pytest.mark.django_db


def page_text(client, language: str, **filters) -> str:
    response = client.get("/accounts/audit/", filters, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_consent_recorded_in_english_reads_in_each_readers_language(users, xiehe, client_for):
    person = Person.objects.get(name="张伟")
    with translation.override("en"):  # the administrator works in English
        services.record_consent(users["admin"], person, {"purpose": "surveys", "channel": "email", "status": "given"})
    entry = AuditEntry.objects.get(object_type="customers.consent")
    assert entry.object_repr == "surveys · given"  # codes, not the actor's words
    auditor = client_for("auditor")
    english = page_text(auditor, "en", object_type="customers.consent")
    assert "Satisfaction surveys · Given" in english
    traditional = page_text(auditor, "zh-hant", object_type="customers.consent")
    assert "滿意度調查 · 已同意" in traditional and "Satisfaction surveys" not in traditional
    assert "滿意度調查 · 已同意" not in english and "surveys · given" not in english + traditional
    assert audit.verify().ok


def test_a_consent_entry_written_before_reads_from_its_codes_or_as_recorded(users, client_for):
    audit.record(AuditEntry.Action.CREATE, ("customers.consent", "7", "Satisfaction surveys · Withdrawn"),
                 user=users["admin"], changes={"purpose": [None, "surveys"], "status": [None, "withdrawn"]})  # fmt: skip
    audit.record(AuditEntry.Action.UPDATE, ("customers.consent", "8", "Service follow-up · Given"), user=users["admin"])
    traditional = page_text(client_for("auditor"), "zh-hant", object_type="customers.consent")
    assert "滿意度調查 · 已撤回" in traditional and "Service follow-up · Given" in traditional
    assert audit.verify().ok
