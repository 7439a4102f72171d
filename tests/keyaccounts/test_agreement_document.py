"""An agreement's PDF is made once, when the agreement is generated, and kept: every later copy — on the web,
through the API, after the customer was renamed or an owner left — is that document, checked against its
SHA-256. A draft may be issued again from the current data; a signed one never. A missing or altered copy is
reported, never silently made anew."""

import datetime as dt
import hashlib
import io
from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import Agreement
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import tiny_pdf

pytestmark = pytest.mark.django_db


def _text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")


@pytest.fixture
def agreement(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    return services.generate_agreement(users["kam"], account, start_date=today, end_date=today + dt.timedelta(days=365))


def test_every_copy_is_the_document_issued_at_generation(agreement, client_for, users, settings):
    assert agreement.issued_at is not None
    kept = settings.VAR_DIR / "agreements" / agreement.document
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == agreement.document_sha256
    response = client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk]))
    first = response.content
    assert "北京协和医院" in _text(first)
    # one name in the reader's language (an ASCII fallback for old clients aside)
    assert "filename*=utf-8''" + quote(f"{agreement.number}-服务协议.pdf") in response["Content-Disposition"]
    # the customer is renamed and moves after the agreement was issued
    Institution.objects.filter(pk=agreement.account.institution_id).update(name="北京协和医院（东单院区）",
                                                                           address="北京市东城区帅府园一号")  # fmt: skip
    again = client_for("manager").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk])).content
    api = client_for("kam")  # the API answers with the same bytes
    api.defaults["HTTP_AUTHORIZATION"] = f"Token {token_for(users['kam'])}"
    by_api = api.get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/pdf/")
    assert first == again == by_api.content
    assert hashlib.sha256(first).hexdigest() == agreement.document_sha256
    listed = api.get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/").json()
    assert listed["document_sha256"] == agreement.document_sha256 and listed["issued_at"]
    created = AuditEntry.objects.get(action="create", object_type="keyaccounts.agreement", object_id=str(agreement.pk))
    assert created.changes["document_sha256"] == [None, agreement.document_sha256]


def test_a_draft_is_issued_again_from_the_current_data_and_a_signed_one_is_not(agreement, client_for, users,
                                                                               settings):  # fmt: skip
    old_name, old_digest = agreement.document, agreement.document_sha256
    Institution.objects.filter(pk=agreement.account.institution_id).update(name="北京协和医院（东单院区）")
    r = client_for("kam").post(reverse("keyaccounts:agreement-reissue", args=[agreement.pk]),
                               {"version": agreement.version})  # fmt: skip
    assert r.status_code == 302
    agreement.refresh_from_db()
    assert agreement.document_sha256 != old_digest
    assert not (settings.VAR_DIR / "agreements" / old_name).exists()  # one version of the document only
    new = client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk])).content
    assert "东单院区" in _text(new)
    entry = AuditEntry.objects.filter(object_id=str(agreement.pk), extra__reissued=True).get()
    assert entry.changes == {"document_sha256": [old_digest, agreement.document_sha256]}
    # a stale page (the version it loaded) issues nothing
    with pytest.raises(ValidationError):
        services.reissue_document(users["kam"], agreement, version=agreement.version - 1)

    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")
    services.record_signed(users["kam"], agreement, signed_date=timezone.localdate(), upload=upload)
    agreement.refresh_from_db()
    signed_digest = agreement.document_sha256
    r = client_for("kam").post(reverse("keyaccounts:agreement-reissue", args=[agreement.pk]),
                               {"version": agreement.version}, follow=True)  # fmt: skip
    assert "只有尚未签署的协议才能重新出具。" in r.content.decode()
    agreement.refresh_from_db()
    assert agreement.document_sha256 == signed_digest


MAY_REISSUE = {"admin", "manager", "kam"}
ROLES = ["admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "analyst", "auditor"]


@pytest.mark.parametrize("role", ROLES)
def test_only_those_who_run_the_account_issue_again(agreement, client_for, role):
    r = client_for(role).post(reverse("keyaccounts:agreement-reissue", args=[agreement.pk]),
                              {"version": agreement.version})  # fmt: skip
    assert r.status_code == (302 if role in MAY_REISSUE else 403)
    reissued = AuditEntry.objects.filter(object_id=str(agreement.pk), extra__reissued=True).exists()
    assert reissued == (role in MAY_REISSUE)
    assert (Agreement.objects.get(pk=agreement.pk).version > agreement.version) == (role in MAY_REISSUE)


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_an_altered_or_missing_copy_is_reported_not_made_again(agreement, client_for, users, settings, damage):
    kept = settings.VAR_DIR / "agreements" / agreement.document
    if damage == "altered":
        kept.write_bytes(kept.read_bytes().replace(b"%PDF", b"%PDF ", 1))
    else:
        kept.unlink()
    r = client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk]), follow=True)
    page = r.content.decode()
    assert r.redirect_chain and f"协议 {agreement.number} 的已出具文本" in page and "从备份恢复" in page
    api = client_for("kam")
    api.defaults["HTTP_AUTHORIZATION"] = f"Token {token_for(users['kam'])}"
    answer = api.get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/pdf/", HTTP_ACCEPT_LANGUAGE="en")
    assert answer.status_code == 409 and "Restore it from a backup" in answer.json()["detail"]
    if damage == "missing":
        assert not kept.exists()  # nothing was generated in its place


def test_an_unavailable_copy_asked_for_from_the_archive_goes_back_to_the_archive(agreement, client_for, settings):
    (settings.VAR_DIR / "agreements" / agreement.document).unlink()
    c = client_for("kam")
    archive = c.get(reverse("keyaccounts:agreements"), {"q": agreement.number}).content.decode()
    link = reverse("keyaccounts:agreement-pdf", args=[agreement.pk]) + f"?from=archive&amp;q={agreement.number}"
    assert f'href="{link}"' in archive
    r = c.get(link.replace("&amp;", "&"), follow=True)
    # back on the archive page the user searched, with the message
    assert r.redirect_chain[-1][0] == reverse("keyaccounts:agreements") + f"?q={agreement.number}"
    assert "从备份恢复" in r.content.decode() and agreement.number in r.content.decode()


def test_an_agreement_from_before_kept_documents_is_rendered_from_its_plan(agreement, client_for):
    Agreement.objects.filter(pk=agreement.pk).update(document="", document_sha256="", issued_at=None)
    r = client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk]))
    assert r.status_code == 200 and agreement.number in _text(r.content)


def test_a_copy_asked_for_while_the_draft_is_issued_again_is_the_new_one(agreement, users):
    """A download reads the agreement, then the draft is issued again and the copy it named is replaced: the
    download answers with the new copy, not with "missing, restore it from a backup"."""
    read_by_download = Agreement.objects.get(pk=agreement.pk)
    services.reissue_document(users["kam"], agreement, version=agreement.version)
    data = services.agreement_document(read_by_download)
    assert hashlib.sha256(data).hexdigest() == Agreement.objects.get(pk=agreement.pk).document_sha256


def test_the_signing_records_which_issued_copy_was_signed(agreement, users):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")
    services.record_signed(users["kam"], agreement, signed_date=timezone.localdate(), upload=upload)
    entry = AuditEntry.objects.filter(object_id=str(agreement.pk), object_type="keyaccounts.agreement",
                                      changes__has_key="signed_date").get()  # fmt: skip
    assert entry.extra["document_sha256"] == agreement.document_sha256


def test_a_draft_from_before_kept_documents_can_be_issued_and_then_is_kept(agreement, client_for, settings):
    Agreement.objects.filter(pk=agreement.pk).update(document="", document_sha256="", issued_at=None)
    page = client_for("kam").get(reverse("keyaccounts:account", args=[agreement.account_id])).content.decode()
    assert reverse("keyaccounts:agreement-reissue", args=[agreement.pk]) in page
    r = client_for("kam").post(reverse("keyaccounts:agreement-reissue", args=[agreement.pk]),
                               {"version": Agreement.objects.get(pk=agreement.pk).version})  # fmt: skip
    assert r.status_code == 302
    kept = Agreement.objects.get(pk=agreement.pk)
    assert kept.issued_at and (settings.VAR_DIR / "agreements" / kept.document).is_file()


def test_an_api_client_asking_for_a_pdf_gets_it(agreement, client, users):
    auth = {"HTTP_AUTHORIZATION": f"Token {token_for(users['kam'])}", "HTTP_ACCEPT": "application/pdf"}
    r = client.get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/pdf/", **auth)
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    assert hashlib.sha256(r.content).hexdigest() == agreement.document_sha256
    missing = client.get("/api/v1/keyaccounts/agreements/999999/pdf/", **auth)
    assert missing.status_code == 404 and missing["Content-Type"].startswith("application/json")


def test_the_bilingual_agreement_has_a_bilingual_footer(agreement, settings):
    """Every other line of the agreement is in Chinese and English; the footer was Chinese only."""
    text = _text((settings.VAR_DIR / "agreements" / agreement.document).read_bytes())
    assert "第 1 页" in text and "Page 1 of" in text and "Generated" in text


def test_the_footer_names_the_whole_bilingual_title_not_a_cut_one(agreement, settings):
    """The footer's title was cut at 30 characters: "重点客户专属服务协议 Key-Account Service"."""
    text = _text((settings.VAR_DIR / "agreements" / agreement.document).read_bytes())
    footer_lines = [line for line in text.splitlines() if "Key-Account Service" in line and "Page" in line]
    assert footer_lines, text[-400:]
    assert all("Key-Account Service Agreement" in line or "…" in line for line in footer_lines)
