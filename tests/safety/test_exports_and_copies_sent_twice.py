"""An ICSR export and a literature copy sent twice (a double click, a client that sent the request again): the export
signed a second time with the code its first sending had used was refused as a wrong code (an audited failed
signature), and the copy of an article was replaced by an identical one (a new file, a deletion and a creation in the
audit trail). The second identical sending now does nothing and answers the first's result: the same batch file, the
same copy. A deliberate export — a new code, minutes later, other options — and another file still act."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pharmacrm.core.form_saves import SENT_AGAIN
from pharmacrm.core.models import AuditEntry, Signature
from pharmacrm.safety import services
from pharmacrm.safety.models import CaseFile, IcsrBatch
from tests.api import conftest as api_fixtures

from .conftest import next_code, sign_code

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

REFERENCE = "Wang L, Zhang W. Ceftriaxone-induced rash: a case report. Chin J Pharmacovigil. 2026;23(4):211-3."
PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
OTHER_PDF = PDF.replace(b"Catalog", b"Catalof")


def _exports(case) -> int:
    return AuditEntry.objects.filter(action="export", object_type="safety.safetycase", object_id=str(case.pk)).count()


def _signatures(case) -> int:
    return Signature.objects.filter(object_type="safety.safetycase", object_id=str(case.pk),
                                    meaning="approved_for_export").count()  # fmt: skip


def _failed_signatures(user) -> int:
    return AuditEntry.objects.filter(action="login_failed", actor=user).count()


def test_an_export_sent_twice_from_the_page_is_exported_once_and_the_second_answer_is_the_first_file(
    web, users, make_case
):
    case = make_case()
    pv = web("pv")
    url = reverse("safety:case-export", args=[case.pk])
    sent = {"purpose": "regulatory", "report": "", "reason": "", "otp_code": sign_code(users["pv"])}

    first = pv.post(url, sent)
    again = pv.post(url, sent)  # a double click: the same form, its code used by the first

    assert first.status_code == again.status_code == 200, again.content[:500]
    assert first["Content-Disposition"] == again["Content-Disposition"] and first.content == again.content
    assert IcsrBatch.objects.count() == 1 and _exports(case) == 1 and _signatures(case) == 1
    assert _failed_signatures(users["pv"]) == 0  # no wrong code audited, none counted


def test_an_export_sent_twice_through_the_api_answers_the_first_batch(api_for, users, make_case):
    case = make_case()
    url = f"/api/v1/safety/cases/{case.pk}/export/"
    body = {"otp_code": sign_code(users["pv"]), "purpose": "regulatory"}

    first = api_for("pv").post(url, body, format="json")
    again = api_for("pv").post(url, body, format="json")

    assert first.status_code == again.status_code == 200, again.content[:500]
    assert first["X-Message-Id"] == again["X-Message-Id"] and first.content == again.content
    assert IcsrBatch.objects.count() == 1 and _exports(case) == 1 and _signatures(case) == 1
    assert _failed_signatures(users["pv"]) == 0


def test_a_deliberate_export_after_it_still_exports(api_for, users, make_case):
    case = make_case()
    url = f"/api/v1/safety/cases/{case.pk}/export/"
    code = sign_code(users["pv"])
    assert api_for("pv").post(url, {"otp_code": code}, format="json").status_code == 200
    # the same export with a new code: exported again (the unchanged case: its stored file, audited and signed)
    code = next_code(users["pv"])
    again = api_for("pv").post(url, {"otp_code": code}, format="json")
    assert again.status_code == 200 and again["X-Retransmission"] == "true"
    assert _exports(case) == 2 and _signatures(case) == 2
    # other options with the code just used: no second sending of that export, but a used code
    partner = api_for("pv").post(url, {"otp_code": code, "purpose": "partner"}, format="json")
    assert partner.status_code == 400 and list(partner.json()) == ["otp_code"]
    assert _exports(case) == 2


def test_the_same_form_minutes_later_is_no_second_sending(api_for, users, make_case):
    case = make_case()
    url = f"/api/v1/safety/cases/{case.pk}/export/"
    code = sign_code(users["pv"])
    assert api_for("pv").post(url, {"otp_code": code}, format="json").status_code == 200
    Signature.objects.update(signed_at=Signature.objects.get().signed_at - dt.timedelta(minutes=3))
    later = api_for("pv").post(url, {"otp_code": code}, format="json")
    assert later.status_code == 400 and list(later.json()) == ["otp_code"]  # its code long used
    assert _exports(case) == 1


def _pdf(data=PDF, name="文章.pdf"):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def _copy_entries(case) -> int:
    return AuditEntry.objects.filter(object_type="safety.casefile", extra__case=case.number).count()


def test_a_literature_copy_sent_twice_from_the_page_is_attached_once(web, make_case):
    case = make_case(literature=REFERENCE)
    pv = web("pv")
    url = reverse("safety:case-literature-copy", args=[case.pk])

    first = pv.post(url, {"reference": "1", "copy": _pdf()}, follow=True)
    kept = CaseFile.objects.get(case=case)
    again = pv.post(url, {"reference": "1", "copy": _pdf()}, follow=True)

    assert first.status_code == again.status_code == 200
    assert CaseFile.objects.get(case=case).pk == kept.pk  # not replaced by an identical one
    assert _copy_entries(case) == 1  # its creation only
    said = [str(m) for m in again.context["messages"]]
    assert str(SENT_AGAIN) in said and "The copy of the article was attached to reference 1." in said


def test_a_literature_copy_uploaded_twice_through_the_api_answers_the_first_copy(api_for, make_case):
    case = make_case(literature=REFERENCE)
    url = f"/api/v1/safety/cases/{case.pk}/literature-copies/"

    first = api_for("pv").post(url, {"reference": "1", "file": _pdf()}, format="multipart")
    again = api_for("pv").post(url, {"reference": "1", "file": _pdf()}, format="multipart")

    assert (first.status_code, again.status_code) == (201, 200), again.content
    assert first.json() == again.json()
    kept = CaseFile.objects.get(case=case)
    assert _copy_entries(case) == 1
    with kept.file.open("rb") as handle:
        assert handle.read() == PDF
    # another file for the reference still replaces it
    other = api_for("pv").post(url, {"reference": "1", "file": _pdf(OTHER_PDF)}, format="multipart")
    assert other.status_code == 201
    assert CaseFile.objects.get(case=case).pk != kept.pk and _copy_entries(case) == 3  # deleted, created


def test_the_service_keeps_the_copy_it_has(users, make_case):
    case = make_case(literature=REFERENCE)
    first = services.attach_literature_copy(users["pv"], case, 1, _pdf())
    again = services.attach_literature_copy(users["pv"], case, 1, _pdf())
    assert again.pk == first.pk and again.again and not getattr(first, "again", False)
    renamed = services.attach_literature_copy(users["pv"], case, 1, _pdf(name="article.pdf"))
    assert renamed.pk != first.pk and renamed.name == "article.pdf"
