"""Safety items of the thirty-second round: the copy of a published article attached to a literature reference
(C.4.r.2) — on the page and the API, in the E2B(R3) export and back through the import — and the state of a case's
latest report in the API's case answer."""

from __future__ import annotations

import base64
import re
import zlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.e2b import export, importer, schema
from pharmacrm.safety.models import CaseFile, SafetyCase, Submission
from tests.api import conftest as api_fixtures
from tests.api.conftest import ROLES

from .conftest import next_code, sign_code

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

NS = {"h": schema.HL7}
REFERENCES = [
    "Wang L, Zhang W. Ceftriaxone-induced rash: a case report. Chin J Pharmacovigil. 2026;23(4):211-3.",
    "Li H, et al. Cutaneous reactions to cephalosporins. Drug Saf. 2025;48(2):101-9.",
]
PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
FDA = Path(__file__).parent / "data" / "fda-examples"
READERS = {"pv", "admin", "manager", "auditor"}  # Cap.OVERSEE_SAFETY


def _pdf(name="文章.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def _literature_documents(xml: bytes) -> list:
    root = etree.fromstring(xml)
    return root.xpath("//h:investigationEvent/h:reference/h:document[h:code/@code='2']", namespaces=NS)


def _export(case, users, **kwargs):
    return services.export_icsr(users["pv"], [case], otp_code=sign_code(users["pv"]), **kwargs)


# --- 1. the copy of the article (C.4.r.2) ---------------------------------------------------------------------


def test_the_copy_of_an_article_attached_on_the_page_goes_inside_the_icsr_and_comes_back(client_for, make_case,
                                                                                          users):  # fmt: skip
    """A case read of in a journal: the PV officer attached the PDF of the article on the case page, but the page
    had no place for it (only 'files', which the ICSR names as documents the sender holds, without their content)
    and the regulator got the reference without the article. Now the copy is attached to its reference, shown
    there, sent as C.4.r.2 (base64, its media type, its name) in a schema-valid ICSR and read back by the import."""
    case = make_case(literature="\n".join(REFERENCES))
    pv = client_for("pv")

    response = pv.post(reverse("safety:case-literature-copy", args=[case.pk]), {"reference": "2", "copy": _pdf()})

    assert response.status_code == 302, response.content.decode()[:2000]
    copy = CaseFile.objects.get(case=case)
    assert copy.literature == REFERENCES[1] and copy.name == "文章.pdf" and copy.content_type == "application/pdf"
    page = pv.get(reverse("safety:case", args=[case.pk])).content.decode()
    item = re.search(r'<li data-reference="2">(.*?)</li>', page, re.S).group(1)
    assert "文章.pdf" in item and reverse("safety:case-file", args=[copy.pk]) in item
    assert "文章.pdf" not in page.split('id="files"')[1]  # not among the documents the sender holds
    assert AuditEntry.objects.filter(action="create", object_type="safety.casefile", object_id=str(copy.pk),
                                     actor=users["pv"]).exists()  # fmt: skip

    result = _export(case, users)

    assert schema.validate(result.xml) == []
    first, second = _literature_documents(result.xml)
    assert first.find("h:text", NS) is None  # reference 1 has no copy
    text = second.find("h:text", NS)
    assert text.get("mediaType") == "application/pdf" and text.get("representation") == "B64"
    assert text.get("compression") is None  # FDA rejects compressed attachments (R0010); ICH makes it optional
    assert text.find("h:reference", NS).get("value") == "文章.pdf"
    assert base64.b64decode("".join(text.find("h:reference", NS).tail.split())) == PDF
    # the element order of the schema and of FDA's instances: code, text, bibliographicDesignationText
    assert [etree.QName(e).localname for e in second] == ["code", "text", "bibliographicDesignationText"]
    root = etree.fromstring(result.xml)
    held = root.xpath("//h:investigationEvent/h:component/h:observationEvent[h:code/@code='1']/h:value/@value",
                      namespaces=NS)  # fmt: skip
    assert held == ["false"]  # C.1.6.1: the article is no document held by the sender

    # a partner's system (here: ours, the case gone) reads the copy back with its reference
    SafetyCase.objects.all().delete()
    [imported] = importer.import_file(users["pv"], result.xml, source_name="partner.xml")
    [back] = CaseFile.objects.filter(case=imported)
    assert back.literature == REFERENCES[1] and back.name == "文章.pdf"
    with back.file.open("rb") as handle:
        assert handle.read() == PDF
    # the same file again changes nothing and stores no second copy
    importer.import_file(users["pv"], result.xml, source_name="partner.xml")
    assert CaseFile.objects.filter(case=imported).count() == 1


def test_a_copy_that_is_not_a_pdf_or_too_large_or_of_no_reference_is_refused_and_nothing_is_kept(
    client_for, make_case, settings
):
    """Refusals name the field, in the reader's language, and leave nothing behind: no row, no stored file."""
    case = make_case(literature=REFERENCES[0])
    pv = client_for("pv")
    url = reverse("safety:case-literature-copy", args=[case.pk])
    stored = _stored()

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    not_pdf = pv.post(url, {"reference": "1", "copy": SimpleUploadedFile("scan.png", png, "image/png")})
    disguised = pv.post(url, {"reference": "1", "copy": _pdf("article.pdf", b"MZ\x90\x00" + b"\x00" * 40)})
    no_such = pv.post(url, {"reference": "3", "copy": _pdf()})

    assert not_pdf.status_code == 400
    assert "scan.png" in not_pdf.content.decode()
    assert re.search(r'class="field has-error[^"]*" id="field-copy"', not_pdf.content.decode())
    assert disguised.status_code == 400 and re.search(r'id="field-copy"', disguised.content.decode())
    assert no_such.status_code == 400 and re.search(r'class="field has-error[^"]*" id="field-reference"',
                                                    no_such.content.decode())  # fmt: skip

    settings.ATTACHMENT_MAX_BYTES = 1000
    too_large = pv.post(url, {"reference": "1", "copy": _pdf(data=PDF)})
    assert too_large.status_code == 413
    assert not CaseFile.objects.exists() and _stored() == stored


def test_the_copy_is_capped_at_what_an_icsr_can_carry(make_case, users):
    """libxml2 refuses a text node of more than 10,000,000 characters when parsing safely (huge_tree off): a copy
    larger than 7 MB would make an ICSR nobody — our own import included — could read."""
    from django.core.exceptions import ValidationError

    case = make_case(literature=REFERENCES[0])
    big = b"%PDF-1.4\n" + b"0" * (services.LITERATURE_COPY_MAX_BYTES)
    with pytest.raises(ValidationError) as refused:
        services.attach_literature_copy(users["pv"], case, 1, _pdf(data=big))
    assert "copy" in refused.value.message_dict and "7.0\xa0MB" in refused.value.message_dict["copy"][0]
    assert not CaseFile.objects.exists()

    fits = b"%PDF-1.4\n" + b"0" * (services.LITERATURE_COPY_MAX_BYTES - 9)
    services.attach_literature_copy(users["pv"], case, 1, _pdf(data=fits))
    xml = _export(case, users).xml  # released: it parsed and validated with huge_tree off
    [document] = _literature_documents(xml)
    assert len(document.find("h:text", NS).find("h:reference", NS).tail) < 10_000_000


def test_the_copy_is_for_pv_only_and_its_download_is_audited(client_for, make_case, users):
    case = make_case(literature=REFERENCES[0])
    copy = services.attach_literature_copy(users["pv"], case, 1, _pdf())
    url = reverse("safety:case-file", args=[copy.pk])

    download = client_for("pv").get(url)

    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert AuditEntry.objects.filter(action="read_personal", object_id=str(case.pk), actor=users["pv"]).exists()
    for role in ("manager", "auditor", "agent"):
        assert client_for(role).get(url).status_code == 403
    refused = client_for("manager").post(reverse("safety:case-literature-copy", args=[case.pk]),
                                         {"reference": "1", "copy": _pdf("other.pdf")})  # fmt: skip
    assert refused.status_code == 403 and CaseFile.objects.count() == 1


def test_a_copy_follows_its_reference_when_corrected_and_a_new_copy_replaces_the_old(
    make_case, users, django_capture_on_commit_callbacks
):
    case = make_case(literature="\n".join(REFERENCES))
    first = services.attach_literature_copy(users["pv"], case, 1, _pdf("v1.pdf"))
    old_name = first.file.name

    corrected = REFERENCES[0].replace("2026;23(4)", "2026;23(5)")
    case.refresh_from_db()
    services.update_case(users["pv"], case, {"literature": f"{corrected}\n{REFERENCES[1]}"}, version=case.version)
    assert CaseFile.objects.get(pk=first.pk).literature == corrected

    case.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        second = services.attach_literature_copy(users["pv"], case, 1, _pdf("v2.pdf", PDF + b"%v2\n"))
    assert list(CaseFile.objects.filter(case=case).values_list("name", flat=True)) == ["v2.pdf"]
    assert not default_storage.exists(old_name)
    assert AuditEntry.objects.filter(action="delete", object_type="safety.casefile", object_id=str(first.pk)).exists()

    # the reference taken off the case: its copy stays, as a document the sender holds (C.1.6.1.r.1)
    case.refresh_from_db()
    services.update_case(users["pv"], case, {"literature": REFERENCES[1]}, version=case.version)
    assert CaseFile.objects.get(pk=second.pk).literature == ""
    xml = export.build([SafetyCase.objects.get(pk=case.pk)])
    assert b"<title>v2.pdf</title>" in xml and not _literature_documents(xml)[0].findall("h:text", NS)


def test_the_fda_mega_instance_brings_the_copy_of_its_article():
    """FDA's scenario 6 includes the article (the ICH guide, a PDF) of its literature reference: it was dropped."""
    data = (FDA / "FAERS2022Scenario6.xml").read_bytes()
    [report] = importer.parse(data)
    [(reference, name, pdf)] = report["literature_copies"]
    assert reference == report["literature"] and name == "ICH_ICSR_Implementation_Guide_v5_01.pdf"
    assert pdf.startswith(b"%PDF-")


def test_a_compressed_copy_is_read_and_a_damaged_one_left_out_with_a_warning(make_case, users):
    """ICH lets a sender deflate the attachment (compression="DF"): it is inflated; one that is not a PDF is left
    out, the case imported, the officer told."""
    case = make_case(literature=REFERENCES[0])
    services.attach_literature_copy(users["pv"], case, 1, _pdf())
    xml = _export(case, users).xml
    SafetyCase.objects.all().delete()

    root = etree.fromstring(xml)
    text = root.xpath("//h:investigationEvent/h:reference/h:document[h:code/@code='2']/h:text", namespaces=NS)[0]
    deflater = zlib.compressobj(wbits=-15)
    text.set("compression", "DF")
    text.find("h:reference", NS).tail = base64.b64encode(deflater.compress(PDF) + deflater.flush()).decode()
    [report] = importer.parse(etree.tostring(root))
    assert report["literature_copies"] == [(REFERENCES[0], "文章.pdf", PDF)]

    text.set("compression", "Z")
    [report] = importer.parse(etree.tostring(root))
    assert report["literature_copies"] == [] and any("C.4.r.2" in w for w in report["warnings"])
    [imported] = importer.import_file(users["pv"], etree.tostring(root), source_name="partner.xml")
    assert imported.literature == REFERENCES[0] and not CaseFile.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_only_pv_attaches_a_copy_through_the_api_and_only_pv_sees_it(api_for, make_case, role):
    case = make_case(literature="\n".join(REFERENCES))

    response = api_for(role).post(f"/api/v1/safety/cases/{case.pk}/literature-copies/",
                                  {"reference": 2, "file": _pdf()}, format="multipart")  # fmt: skip

    if role != "pv":
        assert response.status_code == 403 and not CaseFile.objects.exists()
        return
    assert response.status_code == 201, response.json()
    assert response.json()["reference"] == 2 and response.json()["name"] == "文章.pdf"
    assert api_for("pv").get(f"/api/v1/safety/cases/{case.pk}/").json()["literature_copies"][0]["reference"] == 2
    assert "literature_copies" not in api_for("manager").get(f"/api/v1/safety/cases/{case.pk}/").json()
    wrong = api_for("pv").post(f"/api/v1/safety/cases/{case.pk}/literature-copies/",
                               {"reference": 2, "file": SimpleUploadedFile("a.txt", "正文".encode(), "text/plain")},
                               format="multipart", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert wrong.status_code == 400 and "PDF" in wrong.json()["file"][0]
    assert CaseFile.objects.count() == 1


def _stored() -> list[str]:
    root = Path(default_storage.path(""))
    return sorted(p.as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- 2. the state of the latest report in the API ---------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_case_answer_says_what_became_of_its_latest_report(api_for, make_case, users, role):
    """The case page shows that the report was exported, submitted, acknowledged or rejected; the API's case said
    none of it — an integration had to fetch the submissions and guess which batch was the latest. Now `report`
    carries the kind of the latest report, its state, its batch number, when it was exported and acknowledged
    and the acknowledgement's result, for every role that reads cases."""
    case = make_case()
    client = api_for(role)
    url = f"/api/v1/safety/cases/{case.pk}/"
    if role not in READERS:
        assert client.get(url).status_code == 403
        return
    assert client.get(url).json()["report"] is None

    exported = _export(case, users)
    report = client.get(url).json()["report"]
    assert report["kind"] == "initial" and report["state"] == "exported" and report["ack"] is None
    assert report["batch_number"] == exported.message_id and report["exported_at"] and not report["submitted_at"]

    submission = services.record_submission(users["pv"], SafetyCase.objects.get(pk=case.pk),
                                            {"channel": "nmpa", "message_id": exported.message_id},
                                            otp_code=next_code(users["pv"]))  # fmt: skip
    report = client.get(url).json()["report"]
    assert (report["state"], report["ack"], report["batch_number"]) == ("submitted", "pending", exported.message_id)
    assert report["submitted_at"]

    services.record_ack(users["pv"], submission, accepted=False, errors=["C.1.1: duplicate"], at=timezone.now())
    report = client.get(url).json()["report"]
    assert (report["state"], report["ack"], report["ack_errors"]) == ("acknowledged", "rejected", ["C.1.1: duplicate"])
    assert report["acknowledged_at"] and report["kind"] == "initial"


def test_an_amendment_and_an_accepted_follow_up_read_as_the_page_shows_them(api_for, make_case, users):
    case = make_case()
    first = _export(case, users)
    # to the second, as record_submission stores it: with its microseconds, a submission made in the second the
    # amendment was then exported in read as later than that export (C.1.2 is kept to the second), under load
    Submission.objects.create(case=case, jurisdiction="CN", channel="nmpa",
                              submitted_at=timezone.now().replace(microsecond=0), submitted_by=users["pv"],
                              message_id=first.message_id, ack_status="accepted", ack_at=timezone.now())  # fmt: skip
    services.export_icsr(users["pv"], [SafetyCase.objects.get(pk=case.pk)], otp_code=next_code(users["pv"]),
                         report="amendment", reason="剂量单位更正")  # fmt: skip

    body = api_for("auditor").get(f"/api/v1/safety/cases/{case.pk}/").json()

    assert body["report"]["kind"] == "amendment" and body["report"]["state"] == "exported"
    assert body["report"]["batch_number"] != first.message_id
    # the page's badge says the same
    assert services.report_states([case.pk])[case.pk] == str(services.REPORT_STATES[("amendment", False)])


def test_the_report_state_is_documented_in_the_openapi_schema(api_for, db):
    import json

    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)
    case = spec["components"]["schemas"]["Case"]["properties"]
    assert "report" in case and case["report"].get("readOnly", True)
    last = spec["components"]["schemas"]["LastReport"]["properties"]
    assert {"kind", "state", "batch_number", "exported_at", "submitted_at", "acknowledged_at", "ack",
            "ack_errors"} <= set(last)  # fmt: skip
    assert "/api/v1/safety/cases/{id}/literature-copies/" in spec["paths"]
