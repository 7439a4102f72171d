"""Changing a service agreement's term. Until it is signed, those who run the account correct it in place (the page's
"Change the term", `PATCH /api/v1/keyaccounts/agreements/{id}/`), with the version they loaded and the rules of
generating it; the PDF is issued again. Once signed, the term changes only by an amendment (补充协议): new term,
reason, effective date, optional signed copy; the agreement's PDF stays as signed, the amendment has its own, the
page shows the history and the renewal reminder follows the new end."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation
from pypdf import PdfReader

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import Agreement, AgreementAmendment, ServicePlan
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import tiny_pdf

pytestmark = pytest.mark.django_db


def _pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")


def _words(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


@pytest.fixture
def plan_and_draft(users, xiehe, with_plan):
    """协和's approved plan, valid from 10 days ago to 200 days ahead, and a draft agreement of 100 days from today."""
    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    ServicePlan.objects.filter(pk=plan.pk).update(valid_from=today - dt.timedelta(days=10),
                                                   valid_to=today + dt.timedelta(days=200))  # fmt: skip
    plan.refresh_from_db()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=99))  # fmt: skip
    return account, plan, agreement


@pytest.fixture
def signed(users, plan_and_draft):
    """The agreement signed today, with its signed copy."""
    account, plan, agreement = plan_and_draft
    upload = SimpleUploadedFile("签署件.pdf", tiny_pdf(), "application/pdf")
    services.record_signed(users["kam"], agreement, signed_date=timezone.localdate(), upload=upload,
                           version=agreement.version)  # fmt: skip
    agreement.refresh_from_db()
    return account, plan, agreement


def _term_post(agreement, start, end, version):
    p = f"term{agreement.pk}"
    return {f"{p}-start_date": start.isoformat(), f"{p}-end_date": end.isoformat(), f"{p}-version": version}


def _amend_post(agreement, start, end, *, reason="客户项目延期，双方协商延长服务期", effective=None, version=None,
                token="", copy=None):  # fmt: skip
    p = f"amend{agreement.pk}"
    data = {f"{p}-start_date": start.isoformat(), f"{p}-end_date": end.isoformat(), f"{p}-reason": reason,
            f"{p}-effective_date": (effective or timezone.localdate()).isoformat(),
            f"{p}-version": agreement.version if version is None else version, f"{p}-form_token": token}  # fmt: skip
    if copy is not None:
        data[f"{p}-signed_copy"] = copy
    return data


# --- before signing: the term corrected in place ------------------------------------------------------------


def test_a_draft_term_is_corrected_on_the_page_and_its_pdf_issued_again(users, plan_and_draft, client_for, settings):
    account, plan, agreement = plan_and_draft
    old_document, old_digest = agreement.document, agreement.document_sha256
    start, end = agreement.start_date, agreement.end_date
    new_end = end + dt.timedelta(days=30)
    r = client_for("kam").post(reverse("keyaccounts:agreement-term", args=[agreement.pk]),
                               _term_post(agreement, start, new_end, agreement.version), HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 302
    agreement.refresh_from_db()
    assert (agreement.start_date, agreement.end_date, agreement.version) == (start, new_end, 2)
    # the PDF says the corrected term; the copy issued before is gone (one version of the document)
    assert agreement.document_sha256 != old_digest
    assert not (settings.VAR_DIR / "agreements" / old_document).exists()
    pdf = client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk])).content
    assert new_end.isoformat() in _pdf_text(pdf) and hashlib.sha256(pdf).hexdigest() == agreement.document_sha256
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                      action="update").latest("seq")  # fmt: skip
    assert entry.changes == {"end_date": [end.isoformat(), new_end.isoformat()],
                             "document_sha256": [old_digest, agreement.document_sha256]}  # fmt: skip
    assert entry.actor_id == users["kam"].pk
    page = client_for("kam").get(r.url, HTTP_ACCEPT_LANGUAGE="en")
    assert f"{start.isoformat()} – {new_end.isoformat()}" in _words(page)


def test_an_invalid_term_is_refused_under_its_field_in_the_readers_language(users, plan_and_draft, client_for):
    account, plan, agreement = plan_and_draft
    before = (agreement.start_date, agreement.end_date, agreement.document_sha256, agreement.version)
    url = reverse("keyaccounts:agreement-term", args=[agreement.pk])
    # the end before the start
    r = client_for("kam").post(url, _term_post(agreement, agreement.start_date, agreement.start_date - dt.timedelta(days=1),
                                               agreement.version), HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400
    with translation.override("zh-hans"):
        assert str(services._("The end must come after the start.")) in r.content.decode()
    # past the plan's validity: the day it ends is named, under the end
    with pytest.raises(ValidationError) as late:
        with translation.override("en"):
            services.change_term(users["kam"], agreement, start_date=agreement.start_date,
                                 end_date=plan.valid_to + dt.timedelta(days=1), version=agreement.version)  # fmt: skip
    assert late.value.message_dict == {"end_date": [
        f"The agreement ends within its service plan's validity: on {plan.valid_to.isoformat()} or before."]}
    agreement.refresh_from_db()
    assert (agreement.start_date, agreement.end_date, agreement.document_sha256, agreement.version) == before
    assert not AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                         action="update").exists()  # fmt: skip


def test_a_stale_form_is_refused_and_keeps_the_colleagues_term(users, plan_and_draft, client_for):
    account, plan, agreement = plan_and_draft
    loaded = agreement.version
    start = agreement.start_date
    services.change_term(users["manager"], agreement, start_date=start, end_date=start + dt.timedelta(days=120),
                         version=loaded)  # a manager corrects it meanwhile  # fmt: skip
    r = client_for("kam").post(reverse("keyaccounts:agreement-term", args=[agreement.pk]),
                               _term_post(agreement, start, start + dt.timedelta(days=150), loaded),
                               HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 409
    assert "Someone else changed this record while you were editing it" in _words(r)
    agreement.refresh_from_db()
    assert agreement.end_date == start + dt.timedelta(days=120)
    # a form that carries no version is stale too
    r = client_for("kam").post(reverse("keyaccounts:agreement-term", args=[agreement.pk]),
                               _term_post(agreement, start, start + dt.timedelta(days=150), ""))  # fmt: skip
    assert r.status_code == 400
    agreement.refresh_from_db()
    assert agreement.end_date == start + dt.timedelta(days=120)


def test_the_term_form_sent_twice_changes_it_once(users, plan_and_draft, client_for):
    account, plan, agreement = plan_and_draft
    client = client_for("kam")
    url = reverse("keyaccounts:agreement-term", args=[agreement.pk])
    data = _term_post(agreement, agreement.start_date, agreement.end_date + dt.timedelta(days=5), agreement.version)
    assert client.post(url, data).status_code == 302
    again = client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")  # the double click: the first one did it
    assert again.status_code == 302
    agreement.refresh_from_db()
    assert agreement.version == 2
    assert AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                     action="update").count() == 1  # fmt: skip
    # the same term again (no change) is no new version and no entry
    services.change_term(users["kam"], agreement, start_date=agreement.start_date, end_date=agreement.end_date,
                         version=agreement.version)  # fmt: skip
    agreement.refresh_from_db()
    assert agreement.version == 2


def test_the_api_corrects_a_draft_term_and_refuses_what_the_page_refuses(users, plan_and_draft, api_client):
    account, plan, agreement = plan_and_draft
    url = f"/api/v1/keyaccounts/agreements/{agreement.pk}/"
    new_end = agreement.end_date + dt.timedelta(days=10)
    r = api_client("kam").patch(url, {"end_date": new_end.isoformat(), "version": agreement.version}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["end_date"] == new_end.isoformat() and r.json()["version"] == 2
    stale = api_client("manager").patch(url, {"end_date": agreement.end_date.isoformat(), "version": 1}, format="json")
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    missing = api_client("kam").patch(url, {"end_date": agreement.end_date.isoformat()}, format="json")
    assert missing.status_code == 400 and list(missing.json()) == ["version"]
    outside = api_client("kam").patch(url, {"end_date": (plan.valid_to + dt.timedelta(days=1)).isoformat(),
                                            "version": 2}, format="json")  # fmt: skip
    assert outside.status_code == 400 and list(outside.json()) == ["end_date"]
    assert api_client("kam").put(url, {"end_date": new_end.isoformat(), "version": 2}, format="json").status_code == 405


# --- after signing: amendments ------------------------------------------------------------------------------


def test_a_signed_term_is_not_edited_in_place(users, signed, api_client):
    account, plan, agreement = signed
    with pytest.raises(ValidationError) as refused:
        with translation.override("en"):
            services.change_term(users["kam"], agreement, start_date=agreement.start_date,
                                 end_date=agreement.end_date + dt.timedelta(days=1), version=agreement.version)  # fmt: skip
    assert "changes only by an amendment" in refused.value.message_dict["status"][0]
    r = api_client("kam").patch(f"/api/v1/keyaccounts/agreements/{agreement.pk}/", {
        "end_date": (agreement.end_date + dt.timedelta(days=1)).isoformat(), "version": agreement.version},
        format="json")  # fmt: skip
    assert r.status_code == 400 and "amendment" in r.json()["status"][0]


def test_an_amendment_changes_the_term_keeps_the_signed_pdf_and_shows_in_the_history(users, signed, client_for):
    account, plan, agreement = signed
    signed_pdf = client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk])).content
    old_start, old_end = agreement.start_date, agreement.end_date
    new_end = old_end + dt.timedelta(days=60)
    scan = tiny_pdf()
    copy = SimpleUploadedFile("补充协议签字页.pdf", scan, "application/pdf")
    r = client_for("kam").post(reverse("keyaccounts:agreement-amend", args=[agreement.pk]),
                               _amend_post(agreement, old_start, new_end, copy=copy), HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 302, _words(r)[:2000]
    agreement.refresh_from_db()
    amendment = AgreementAmendment.objects.get(agreement=agreement)
    assert (agreement.start_date, agreement.end_date) == (old_start, new_end)  # the term in force: the amendment's
    assert (amendment.number, amendment.previous_end, amendment.end_date) == (f"{agreement.number}-A1", old_end, new_end)
    # the agreement's PDF is the one signed, with the term signed
    assert client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk])).content == signed_pdf
    # the amendment's own bilingual PDF: the term before and after, the reason
    pdf = client_for("manager").get(reverse("keyaccounts:amendment-pdf", args=[agreement.pk, 1]))
    text = _pdf_text(pdf.content)
    assert "补充协议" in text and "Amendment" in text and agreement.number in text
    assert old_end.isoformat() in text and new_end.isoformat() in text and "客户项目延期" in text
    assert hashlib.sha256(pdf.content).hexdigest() == amendment.document_sha256
    copy_download = client_for("kam").get(reverse("keyaccounts:amendment-signed-copy", args=[agreement.pk, 1]))
    assert copy_download.status_code == 200 and b"".join(copy_download.streaming_content) == scan
    # the history on the account's page, for every reader of the account
    page = _words(client_for("support").get(reverse("keyaccounts:account", args=[account.pk]),
                                            HTTP_ACCEPT_LANGUAGE="en"))  # fmt: skip
    assert f"{agreement.number}-A1" in page and "客户项目延期，双方协商延长服务期" in page
    assert f"as signed: {old_start.isoformat()} – {old_end.isoformat()}; amended once" in page
    # audited: the amendment with the term before and after, the agreement's change naming it
    created = AuditEntry.objects.get(object_type="keyaccounts.agreementamendment", action="create")
    assert created.changes["previous_end"] == [None, old_end.isoformat()]
    assert created.changes["end_date"] == [None, new_end.isoformat()]
    assert created.changes["reason"] == [None, "客户项目延期，双方协商延长服务期"]
    changed = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                        action="update").latest("seq")  # fmt: skip
    assert changed.changes["end_date"] == [old_end.isoformat(), new_end.isoformat()]
    assert changed.extra["amendment"] == amendment.number


def test_an_amendment_without_a_reason_is_refused_and_nothing_is_written(users, signed, client_for):
    account, plan, agreement = signed
    end = agreement.end_date
    r = client_for("kam").post(reverse("keyaccounts:agreement-amend", args=[agreement.pk]),
                               _amend_post(agreement, agreement.start_date, end + dt.timedelta(days=5), reason="  "),
                               HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400
    with translation.override("zh-hans"):
        assert str(services._("Say why the term changes: the reason is part of the amendment.")) in r.content.decode()
    agreement.refresh_from_db()
    assert agreement.end_date == end and not agreement.amendments.exists()
    # the same term, an effective date ahead past the day after the current end (a gap): refused by name
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.amend_term(users["kam"], agreement, {
            "start_date": agreement.start_date, "end_date": end, "reason": "x",
            "effective_date": end + dt.timedelta(days=2)}, version=agreement.version)  # fmt: skip
    assert set(refused.value.message_dict) == {"end_date", "effective_date"}
    assert refused.value.message_dict["effective_date"] == [
        "An amendment signed ahead of its effective date takes effect while the agreement runs: on "
        f"{(end + dt.timedelta(days=1)).isoformat()} at the latest, the day after its current end."]  # fmt: skip


def test_an_amendment_outside_the_plans_validity_says_what_the_validity_is(users, signed, api_client):
    account, plan, agreement = signed
    late = plan.valid_to + dt.timedelta(days=31)
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.amend_term(users["kam"], agreement, {"start_date": agreement.start_date, "end_date": late,
                                                      "reason": "延期", "effective_date": timezone.localdate()},
                            version=agreement.version)  # fmt: skip
    message = refused.value.message_dict["end_date"][0]
    assert f"valid {plan.valid_from.isoformat()} – {plan.valid_to.isoformat()}" in message
    assert f"v{plan.version_number}" in message and late.isoformat() in message
    r = api_client("kam").post(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/", {
        "start_date": agreement.start_date.isoformat(), "end_date": late.isoformat(), "reason": "延期",
        "effective_date": timezone.localdate().isoformat(), "version": agreement.version}, format="json")  # fmt: skip
    assert r.status_code == 400 and plan.valid_to.isoformat() in r.json()["end_date"][0]
    assert not agreement.amendments.exists()


def test_the_renewal_reminder_follows_the_amended_end(users, signed):
    account, plan, agreement = signed
    # the reminder for the signed end went out already
    services.sweep_agreements(now=services._renewal_moment(agreement) + dt.timedelta(minutes=1))
    agreement.refresh_from_db()
    assert agreement.renewal_notified_at is not None
    told = Notification.objects.filter(kind="keyaccounts.renewal").count()
    new_end = agreement.end_date + dt.timedelta(days=90)
    services.amend_term(users["kam"], agreement, {"start_date": agreement.start_date, "end_date": new_end,
                                                  "reason": "延长服务期", "effective_date": timezone.localdate()},
                        version=agreement.version)  # fmt: skip
    agreement.refresh_from_db()
    assert agreement.renewal_notified_at is None
    assert agreement.next_check_at == services._renewal_moment(agreement)  # 60 days before the new end
    assert services._renewal_moment(agreement).date() == new_end - dt.timedelta(days=60)
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                      action="update", extra__amendment__isnull=False).latest("seq")  # fmt: skip
    assert entry.changes["renewal_notified_at"][1] is None
    # nothing before its day; on it, one reminder naming the new end
    services.sweep_agreements(now=services._renewal_moment(agreement) - dt.timedelta(hours=1))
    assert Notification.objects.filter(kind="keyaccounts.renewal").count() == told
    services.sweep_agreements(now=services._renewal_moment(agreement) + dt.timedelta(minutes=1))
    reminders = Notification.objects.filter(kind="keyaccounts.renewal").order_by("-pk")
    assert reminders.count() > told and new_end.isoformat() in str(reminders.first().title)


def test_an_amendment_form_sent_twice_records_one_and_a_stale_one_none(users, signed, client_for):
    account, plan, agreement = signed
    client = client_for("kam")
    url = reverse("keyaccounts:agreement-amend", args=[agreement.pk])
    data = _amend_post(agreement, agreement.start_date, agreement.end_date + dt.timedelta(days=20), token="t" * 32)
    assert client.post(url, data).status_code == 302
    again = client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 302
    assert AgreementAmendment.objects.filter(agreement=agreement).count() == 1
    # a colleague's page loaded before that amendment: refused, nothing written
    other = _amend_post(agreement, agreement.start_date, agreement.end_date + dt.timedelta(days=40), token="u" * 32)
    r = client_for("manager").post(url, other, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 409 and "Someone else changed this record" in _words(r)
    agreement.refresh_from_db()
    assert agreement.end_date == agreement.amendments.get().end_date and agreement.amendments.count() == 1


def test_the_api_records_an_amendment_with_its_history(users, signed, api_client):
    account, plan, agreement = signed
    url = f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/"
    new_end = agreement.end_date + dt.timedelta(days=15)
    body = {"start_date": agreement.start_date.isoformat(), "end_date": new_end.isoformat(),
            "effective_date": timezone.localdate().isoformat(), "version": agreement.version,
            "signed_copy": SimpleUploadedFile("amend.pdf", tiny_pdf(), "application/pdf")}  # fmt: skip
    no_reason = api_client("kam").post(url, body, format="multipart")
    assert no_reason.status_code == 400 and list(no_reason.json()) == ["reason"]
    body["signed_copy"].seek(0)
    r = api_client("kam").post(url, {**body, "reason": "延长"}, format="multipart")
    assert r.status_code == 201, r.content
    got = r.json()
    assert got["end_date"] == new_end.isoformat() and got["signed_end_date"] == agreement.end_date.isoformat()
    assert [a["number"] for a in got["amendments"]] == [f"{agreement.number}-A1"]
    assert got["amendments"][0]["signed_copy_name"] == "amend.pdf"
    stale = api_client("kam").post(url, {"start_date": agreement.start_date.isoformat(), "end_date": new_end.isoformat(),
                                         "reason": "再次", "effective_date": timezone.localdate().isoformat(),
                                         "version": agreement.version}, format="json")  # fmt: skip
    assert stale.status_code == 409
    pdf = api_client("auditor").get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/1/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert api_client("auditor").get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/2/pdf/").status_code == 404
    copy = api_client("kam").get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/1/signed-copy/")
    assert copy.status_code == 200


# --- who may ----------------------------------------------------------------------------------------------------

RUNS_ACCOUNT = {"admin", "manager", "kam"}  # administrators, managers, the account's project manager
ROLES = ["admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "analyst", "auditor"]


@pytest.mark.parametrize("role", ROLES)
def test_who_may_correct_a_draft_term(role, users, plan_and_draft, api_client):
    account, plan, agreement = plan_and_draft
    new_end = agreement.end_date + dt.timedelta(days=1)
    r = api_client(role).patch(f"/api/v1/keyaccounts/agreements/{agreement.pk}/",
                               {"end_date": new_end.isoformat(), "version": agreement.version}, format="json")  # fmt: skip
    agreement.refresh_from_db()
    if role in RUNS_ACCOUNT:
        assert r.status_code == 200 and agreement.end_date == new_end
    else:
        assert r.status_code == 403 and agreement.end_date == new_end - dt.timedelta(days=1)


@pytest.mark.parametrize("role", ROLES)
def test_who_may_amend_a_signed_term(role, users, signed, client_for):
    account, plan, agreement = signed
    new_end = agreement.end_date + dt.timedelta(days=1)
    r = client_for(role).post(reverse("keyaccounts:agreement-amend", args=[agreement.pk]),
                              _amend_post(agreement, agreement.start_date, new_end))  # fmt: skip
    agreement.refresh_from_db()
    if role in RUNS_ACCOUNT:
        assert r.status_code == 302 and agreement.end_date == new_end
    else:
        assert r.status_code == 403 and not agreement.amendments.exists()


def test_a_key_account_manager_outside_the_team_may_not(users, make_user, signed):
    from pharmacrm.core.access import may_change_agreement_term
    from pharmacrm.core.roles import Role

    account, plan, agreement = signed
    other = make_user("kam2", Role.KAM)
    assert may_change_agreement_term(users["kam"], agreement) and not may_change_agreement_term(other, agreement)
    with pytest.raises(PermissionDenied):
        services.amend_term(other, agreement, {"start_date": agreement.start_date, "end_date": agreement.end_date,
                                               "reason": "x", "effective_date": timezone.localdate()},
                            version=agreement.version)  # fmt: skip
    assert Agreement.objects.get(pk=agreement.pk).version == agreement.version


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_people_amending_at_once_from_the_same_page_record_one_amendment(users, signed):
    """The second waits for the first's locks, then finds the agreement one version on: refused, nothing written."""
    from tests.concurrency import held_while

    account, plan, agreement = signed
    loaded, end = agreement.version, agreement.end_date
    out = []

    def amend(user, days):
        fresh = Agreement.objects.get(pk=agreement.pk)
        return services.amend_term(user, fresh, {"start_date": fresh.start_date, "end_date": end + dt.timedelta(days=days),
                                                 "reason": "延期", "effective_date": timezone.localdate()},
                                   version=loaded)  # fmt: skip

    def second():
        try:
            amend(users["manager"], 20)
            out.append("recorded")
        except services.StaleVersion as e:
            out.append(e.current_version)

    held_while(lambda: amend(users["kam"], 10), second)
    assert out == [loaded + 1]
    agreement.refresh_from_db()
    assert agreement.end_date == end + dt.timedelta(days=10)
    assert list(agreement.amendments.values_list("sequence", "end_date")) == [(1, end + dt.timedelta(days=10))]


def test_the_nightly_file_sweep_keeps_the_amendments_files_and_deletes_an_orphan(users, signed, settings):
    import os

    account, plan, agreement = signed
    services.amend_term(users["kam"], agreement, {
        "start_date": agreement.start_date, "end_date": agreement.end_date + dt.timedelta(days=3), "reason": "延期",
        "effective_date": timezone.localdate(), "signed_copy": SimpleUploadedFile("a.pdf", tiny_pdf(), "application/pdf"),
    }, version=agreement.version)  # fmt: skip
    amendment = agreement.amendments.get()
    folder = settings.VAR_DIR / "agreements"
    orphan = folder / f"{agreement.number}-amendment-{'0' * 32}.pdf"  # an upload whose process was killed
    orphan.write_bytes(tiny_pdf())
    old = (timezone.now() - dt.timedelta(days=2)).timestamp()
    for path in folder.iterdir():
        os.utime(path, (old, old))
    assert services.sweep_orphaned_files() == 1
    assert not orphan.exists()
    assert (folder / amendment.signed_copy).exists() and (folder / amendment.document).exists()


# --- the signed copy uploaded later --------------------------------------------------------------------------------


def _amended_without_copy(users, agreement):
    return services.amend_term(users["kam"], agreement, {
        "start_date": agreement.start_date, "end_date": agreement.end_date + dt.timedelta(days=5), "reason": "延期",
        "effective_date": timezone.localdate()}, version=agreement.version)  # fmt: skip


def test_the_signed_copy_is_uploaded_days_later_once_and_never_replaced(users, signed, client_for):
    account, plan, agreement = signed
    amendment = _amended_without_copy(users, agreement)
    page = _words(client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en"))
    assert "Upload the signed copy" in page
    assert "Upload the signed copy" not in _words(client_for("expert").get(
        reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en"))  # fmt: skip
    url = reverse("keyaccounts:amendment-attach-copy", args=[agreement.pk, 1])
    scan = tiny_pdf()
    r = client_for("kam").post(url, {"signed_copy": SimpleUploadedFile("补充协议签署件.pdf", scan, "application/pdf")},
                               HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    assert f"The signed copy of amendment {amendment.number} was kept." in _words(r)
    amendment.refresh_from_db()
    assert amendment.signed_copy_name == "补充协议签署件.pdf"
    assert amendment.signed_copy_sha256 == hashlib.sha256(scan).hexdigest()
    copy = client_for("kam").get(reverse("keyaccounts:amendment-signed-copy", args=[agreement.pk, 1]))
    assert b"".join(copy.streaming_content) == scan
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreementamendment", action="update").get()
    assert entry.changes == {"signed_copy": [None, amendment.signed_copy]} and entry.actor_id == users["kam"].pk
    assert entry.extra["sha256"] == amendment.signed_copy_sha256
    # sent twice (a double click): said so, the first copy kept; another user's copy is refused, naming the field
    again = client_for("kam").post(url, {"signed_copy": SimpleUploadedFile("b.pdf", tiny_pdf(), "application/pdf")},
                                   HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    assert "This form was already sent" in _words(again)
    with translation.override("en"), pytest.raises(ValidationError) as replaced:
        services.attach_amendment_copy(users["manager"], amendment, SimpleUploadedFile("c.pdf", tiny_pdf(),
                                                                                      "application/pdf"))  # fmt: skip
    assert "has its signed copy already (补充协议签署件.pdf)" in replaced.value.message_dict["signed_copy"][0]
    amendment.refresh_from_db()
    assert amendment.signed_copy_name == "补充协议签署件.pdf"
    assert AuditEntry.objects.filter(object_type="keyaccounts.agreementamendment", action="update").count() == 1
    assert "Upload the signed copy" not in _words(client_for("kam").get(
        reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en"))  # fmt: skip


def test_a_later_signed_copy_of_another_type_or_too_large_is_refused(users, signed, api_client, monkeypatch):
    account, plan, agreement = signed
    amendment = _amended_without_copy(users, agreement)
    url = f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/1/signed-copy/upload/"
    fake = SimpleUploadedFile("scan.pdf", b"%PDF-1.4 not really", "application/pdf")
    r = api_client("kam").post(url, {"signed_copy": fake}, format="multipart")
    assert r.status_code == 400 and r.json() == {"signed_copy": [
        "Upload the signed amendment as a PDF, PNG or JPEG file."]}  # fmt: skip
    announced = api_client("kam").post(url, {}, format="multipart", CONTENT_LENGTH=str(services.SIGNED_COPY_MAX * 2))
    assert announced.json() == {"signed_copy": ["The file is too large; the limit is 20 MB."]}
    monkeypatch.setattr(services, "SIGNED_COPY_MAX", 1000)
    big = SimpleUploadedFile("big.pdf", b"%PDF" + b"0" * 5000, "application/pdf")
    r = api_client("kam").post(url, {"signed_copy": big}, format="multipart")
    assert r.json() == {"signed_copy": ["The file is too large; the limit is 20 MB."]}
    assert api_client("kam").post(url, {}, format="multipart").status_code == 400
    amendment.refresh_from_db()
    assert not amendment.signed_copy
    assert api_client("kam").post(url.replace("/1/", "/2/"), {}, format="multipart").status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_who_may_upload_an_amendments_signed_copy_later(role, users, signed, api_client):
    account, plan, agreement = signed
    amendment = _amended_without_copy(users, agreement)
    r = api_client(role).post(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/1/signed-copy/upload/",
                              {"signed_copy": SimpleUploadedFile("s.pdf", tiny_pdf(), "application/pdf")},
                              format="multipart")  # fmt: skip
    amendment.refresh_from_db()
    if role in RUNS_ACCOUNT:
        assert r.status_code == 200, r.content
        assert r.json()["amendments"][0]["signed_copy_name"] == "s.pdf" and amendment.signed_copy
    else:  # those who may see the account are refused; the others do not see it
        assert r.status_code in (403, 404) and not amendment.signed_copy


# --- an amendment effective later ---------------------------------------------------------------------------------


def _moment(day: dt.date, hour: int = 1) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def test_an_amendment_effective_later_holds_from_its_day_and_the_reminders_follow_the_term_of_the_day(
    users, signed, client_for
):
    from pharmacrm.core import amendments

    account, plan, agreement = signed
    today = timezone.localdate()
    old = (agreement.start_date, agreement.end_date)  # today – today+99, reminded 60 days before the end
    takes_effect = old[1] + dt.timedelta(days=1)  # signed now, in effect from the day after the current end
    new_end = today + dt.timedelta(days=180)
    r = client_for("kam").post(reverse("keyaccounts:agreement-amend", args=[agreement.pk]),
                               _amend_post(agreement, old[0], new_end, effective=takes_effect),
                               HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 302
    agreement.refresh_from_db()
    amendment = agreement.amendments.get()
    assert (agreement.start_date, agreement.end_date) == old and amendment.applied_at is None  # not yet
    assert amendments.term_on(agreement, today) == old
    assert amendments.term_on(agreement, takes_effect) == (old[0], new_end)
    assert agreement.next_check_at <= _moment(takes_effect, 0)  # the worker looks on its day
    page = _words(client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en"))
    assert (f"amended from {takes_effect.isoformat()}: new term {old[0].isoformat()} – {new_end.isoformat()} "
            f"({amendment.number})") in page  # fmt: skip
    assert "not in effect yet" in page and "Record the amendment" not in page  # one waiting amendment at a time
    with translation.override("en"), pytest.raises(ValidationError) as second:
        services.amend_term(users["kam"], agreement, {"start_date": old[0], "end_date": new_end + dt.timedelta(days=5),
                                                      "reason": "再延", "effective_date": today},
                            version=agreement.version)  # fmt: skip
    assert second.value.message_dict["status"] == [
        f"Amendment {amendment.number} takes effect on {takes_effect.isoformat()}: record another amendment once it has."]
    # no reminder for the current end: the amendment extends it (the reminder follows the end it will have)
    assert services.sweep_agreements(now=_moment(old[1] - dt.timedelta(days=60), 10)) == 0
    assert not Notification.objects.filter(kind="keyaccounts.renewal").exists()
    # on its day the worker applies it before anything expires: the new term, reminded again before the new end
    assert services.sweep_agreements(now=_moment(takes_effect)) == 0
    agreement.refresh_from_db()
    amendment.refresh_from_db()
    assert (agreement.start_date, agreement.end_date, agreement.status) == (old[0], new_end, "signed")
    assert amendment.applied_at is not None and agreement.renewal_notified_at is None
    assert services.sweep_agreements(now=_moment(new_end - dt.timedelta(days=60), 10)) == 1
    assert new_end.isoformat() in str(Notification.objects.filter(kind="keyaccounts.renewal").latest("pk").title)
    applied = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                        extra__amendment=amendment.number).get()  # fmt: skip
    assert applied.actor_name == "system" and applied.changes["end_date"] == [old[1].isoformat(), new_end.isoformat()]


# --- an expired agreement extended ----------------------------------------------------------------------------------


def _run_out(agreement, plan, days_ago: int = 10):
    today = timezone.localdate()
    ServicePlan.objects.filter(pk=plan.pk).update(valid_from=today - dt.timedelta(days=300))
    Agreement.objects.filter(pk=agreement.pk).update(start_date=today - dt.timedelta(days=200),
                                                     end_date=today - dt.timedelta(days=days_ago), status="expired",
                                                     signed_date=today - dt.timedelta(days=200))  # fmt: skip
    agreement.refresh_from_db()
    plan.refresh_from_db()


def test_an_expired_agreement_is_extended_by_an_amendment_within_the_plans_validity(users, signed, client_for):
    account, plan, agreement = signed
    _run_out(agreement, plan)
    today = timezone.localdate()
    page = _words(client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en"))
    assert "Amend the term" in page
    with translation.override("en"), pytest.raises(ValidationError) as short:
        services.amend_term(users["kam"], agreement, {"start_date": agreement.start_date, "end_date": today -
                                                      dt.timedelta(days=1), "reason": "补签", "effective_date": today},
                            version=agreement.version)  # fmt: skip
    assert short.value.message_dict["end_date"] == [
        f"This agreement's term ended on {agreement.end_date.isoformat()}: an amendment of it extends the term, "
        "to today or later."]  # fmt: skip
    with translation.override("en"), pytest.raises(ValidationError) as beyond:
        services.amend_term(users["kam"], agreement, {"start_date": agreement.start_date, "end_date": today +
                                                      dt.timedelta(days=400), "reason": "补签", "effective_date": today},
                            version=agreement.version)  # fmt: skip
    assert "validity of the service plan" in beyond.value.message_dict["end_date"][0]
    new_end = today + dt.timedelta(days=150)
    r = client_for("kam").post(reverse("keyaccounts:agreement-amend", args=[agreement.pk]),
                               _amend_post(agreement, agreement.start_date, new_end,
                                           effective=agreement.end_date + dt.timedelta(days=1)))  # fmt: skip
    assert r.status_code == 302
    agreement.refresh_from_db()
    assert (agreement.end_date, agreement.status) == (new_end, "signed")
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                      action="update").latest("seq")  # fmt: skip
    assert entry.changes["status"] == ["expired", "signed"] and entry.extra["amendment"] == f"{agreement.number}-A1"


def test_a_renewed_agreement_is_not_amended_and_the_message_names_its_renewal(users, signed):
    account, plan, agreement = signed
    _run_out(agreement, plan)
    today = timezone.localdate()
    renewal = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=9),
                                          end_date=today + dt.timedelta(days=100))  # fmt: skip
    Agreement.objects.filter(pk=renewal.pk).update(status="signed")
    Agreement.objects.filter(pk=agreement.pk).update(status="renewed")
    agreement.refresh_from_db()
    for status in ("renewed", "expired"):
        Agreement.objects.filter(pk=agreement.pk).update(status=status)
        agreement.refresh_from_db()
        with translation.override("en"), pytest.raises(ValidationError) as refused:
            services.amend_term(users["kam"], agreement, {"start_date": agreement.start_date, "end_date": today +
                                                          dt.timedelta(days=30), "reason": "x", "effective_date": today},
                                version=agreement.version)  # fmt: skip
        assert refused.value.message_dict["status"] == [
            f"This agreement was renewed by {renewal.number} (from {renewal.start_date.isoformat()}): amend that one "
            "instead."]  # fmt: skip
    assert not agreement.amendments.exists()
