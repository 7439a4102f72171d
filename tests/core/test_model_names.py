"""Every kind of record has a name of its own, in the reader's language: the audit page's "Object type" filter
lists the kinds by it (a model without one was left out: cooperation tasks, checks, acceptances and payments could
not be chosen), and the API's pages and the audit page's "what" column show it."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.core.forms import AuditFilterForm, object_types
from pharmacrm.core.models import AuditEntry

# bookkeeping tables: never audited, never shown to anyone by name — left out of the audit filter on purpose
UNNAMED = {
    "core.auditchainhead": "the audit chain's last sequence number and hash (a lock row)",
    "core.counter": "the counters behind human-readable numbers (TK-2026-000123)",
    "customers.searchterm": "the customers' search index (n-grams, pinyin keys)",
    "servicedesk.webintake": "the public web form's rate-limit log (a keyed hash of the address)",
    "sales.rollupdirty": "the rollups to recompute (a work queue of the nightly refresh)",
    "sales.rollupemptied": "the rollups deleted since the last evaluation (a work queue)",
    "sales.churnrate": "figures the nightly refresh computes, shown by the churn report and API under their own titles",
}


def _ours():
    # apps.get_models() leaves out the many-to-many through tables Django creates (user–team, tags…): internal
    return [m for m in apps.get_models() if m.__module__.startswith("pharmacrm.")]


def test_every_model_has_a_name_and_a_plural_of_its_own():
    unnamed = sorted(
        m._meta.label_lower
        for m in _ours()
        if not {"verbose_name", "verbose_name_plural"} <= set(m._meta.original_attrs)
        and m._meta.label_lower not in UNNAMED
    )
    assert unnamed == [], "give these models a translated verbose_name and verbose_name_plural (or list them here)"
    assert set(UNNAMED) <= {m._meta.label_lower for m in _ours()}, "a listed model is gone: take it off the list"


def test_the_audit_filter_offers_every_named_model_in_the_readers_language():
    offered = dict(object_types())
    assert {m._meta.label_lower for m in _ours()} - set(UNNAMED) <= set(offered)
    assert not set(UNNAMED) & set(offered)
    with translation.override("en"):
        offered = {k: str(v) for k, v in object_types()}
    assert offered["cooperation.task"] == "Cooperation project task"
    assert offered["cooperation.check"] == "Cooperation project check"
    assert offered["cooperation.acceptance"] == "Cooperation project acceptance"
    assert offered["cooperation.payment"] == "Cooperation project payment"


@pytest.mark.django_db
def test_the_audit_page_filters_cooperation_payments(client_for, admin_user):
    audit.record(AuditEntry.Action.CREATE, ("cooperation.payment", "41", "2026-03-01 ¥1,000.00"), user=admin_user)
    audit.record(AuditEntry.Action.CREATE, ("cooperation.task", "41", "培训讲者"), user=admin_user)
    form = AuditFilterForm({"object_type": "cooperation.payment"})
    assert form.is_valid(), form.errors
    response = client_for("auditor").get("/accounts/audit/", {"object_type": "cooperation.payment"},
                                         HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    html = response.content.decode()
    assert response.status_code == 200
    assert "2026-03-01 ¥1,000.00" in html and "培训讲者" not in html
    assert '<option value="cooperation.payment" selected>Cooperation project payment</option>' in html
