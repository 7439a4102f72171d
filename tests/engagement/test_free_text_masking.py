"""Contact details typed into an interaction's subject or notes (请回电 139-1234-5678) were shown in clear to the
roles that see personal data masked (agent, expert, support, after-sales, analyst, auditor), though a customer's own
needs and notes were masked: they are masked alike on the list, the interaction's page, the customer's 360 block,
in the API and in the audit trail; what is stored is not changed, and an editor shown the masks who saves them back
(the edit form, a GET then PATCH) keeps the real numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.engagement import services
from pharmacrm.engagement.models import Interaction
from tests.api.conftest import api_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

SUBJECT = "请回电 139-1234-5678"
NOTES = "家属邮箱li.na@example.com，身份证110101199003071234"
CLEAR = ("139-1234-5678", "li.na@example.com", "110101199003071234")


def _clear_in(text: str) -> bool:
    return any(v in text for v in CLEAR)


@pytest.fixture
def call(users, xiehe):
    return services.record_interaction(users["agent"], {
        "institution": xiehe, "channel": "phone", "subject": SUBJECT, "notes": NOTES,
        "received_at": timezone.now() - dt.timedelta(hours=2)})  # fmt: skip


@pytest.mark.parametrize("role", ["agent", "analyst", "auditor"])
def test_the_pages_mask_the_subject_and_notes_for_roles_that_see_personal_data_masked(client_for, call, xiehe, role):
    client = client_for(role)
    listing = client.get("/interactions/").content.decode()
    assert "请回电 139****5678" in listing and not _clear_in(listing)
    page = client.get(f"/interactions/{call.pk}/").content.decode()
    assert "请回电 139****5678" in page and "l***@example.com" in page and "110***********1234" in page
    assert not _clear_in(page)  # the title, the heading, the notes and (for the author) the edit form
    assert not _clear_in(client.get(f"/customers/institutions/{xiehe.pk}/").content.decode())
    stored = Interaction.objects.get(pk=call.pk)
    assert (stored.subject, stored.notes) == (SUBJECT, NOTES)


@pytest.mark.parametrize("role", ["rep", "kam", "admin"])
def test_roles_that_see_personal_data_read_them_as_typed(client_for, call, role):
    page = client_for(role).get(f"/interactions/{call.pk}/").content.decode()
    assert SUBJECT in page and "li.na@example.com" in page


def test_the_api_masks_them_and_a_patch_of_the_masks_keeps_the_real_details(api_for, call):  # noqa: F811
    agent = api_for("agent")
    shown = agent.get(f"/api/v1/interactions/{call.pk}/").json()
    assert shown["subject"] == "请回电 139****5678" and not _clear_in(str(shown))
    listed = agent.get("/api/v1/interactions/").json()["results"]
    assert not _clear_in(str(listed))
    r = agent.patch(f"/api/v1/interactions/{call.pk}/", {"notes": shown["notes"] + "。已回访", "version": shown["version"]},
                    format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    stored = Interaction.objects.get(pk=call.pk)
    assert stored.notes == NOTES + "。已回访" and stored.subject == SUBJECT
    assert api_for("kam").get(f"/api/v1/interactions/{call.pk}/").json()["subject"] == SUBJECT


def test_the_edit_form_shows_the_masks_and_saving_them_back_keeps_the_real_details(client_for, call, xiehe):
    client = client_for("agent")
    form = client.get(f"/interactions/{call.pk}/").context["form"]
    assert form.initial["subject"] == "请回电 139****5678" and not _clear_in(form.initial["notes"])
    local = timezone.localtime(call.received_at).strftime("%Y-%m-%dT%H:%M")
    saved = client.post(f"/interactions/{call.pk}/", {
        "institution": xiehe.pk, "channel": "phone", "received_at": local, "subject": form.initial["subject"],
        "notes": form.initial["notes"] + "。已回访", "version": call.version})  # fmt: skip
    assert saved.status_code == 302
    stored = Interaction.objects.get(pk=call.pk)
    assert (stored.subject, stored.notes) == (SUBJECT, NOTES + "。已回访")


def test_the_audit_trail_masks_them_for_the_auditor(client_for, api_for, call, users):  # noqa: F811
    services.update_interaction(users["agent"], call, {"notes": "改为 13800138000"}, version=call.version)
    page = client_for("auditor").get("/accounts/audit/", {"object_type": "engagement.interaction"}).content.decode()
    assert "138****8000" in page and "139****5678" in page and not _clear_in(page) and "13800138000" not in page
    entries = api_for("auditor").get("/api/v1/audit/", {"object_type": "engagement.interaction"}).json()["results"]
    assert entries and not _clear_in(str(entries)) and "13800138000" not in str(entries)
    admin = client_for("admin").get("/accounts/audit/", {"object_type": "engagement.interaction"}).content.decode()
    assert "13800138000" in admin
    assert AuditEntry.objects.filter(object_type="engagement.interaction", action="update").get().changes["notes"] == [
        NOTES, "改为 13800138000"]  # fmt: skip
