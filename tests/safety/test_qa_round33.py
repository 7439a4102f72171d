"""Safety items of the thirty-third round: the copy of an article downloaded through the API, the latest report on
the case list (page and API), one size limit for an incoming ICSR or acknowledgement, and the case files stored
before safety 0010 moved to random names on disk."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import CaseFile
from tests.api import conftest as api_fixtures

from .conftest import sign_code

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

REFERENCES = [
    "Wang L, Zhang W. Ceftriaxone-induced rash: a case report. Chin J Pharmacovigil. 2026;23(4):211-3.",
    "Li H, et al. Cutaneous reactions to cephalosporins. Drug Saf. 2025;48(2):101-9.",
]
PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def _pdf(name="文章.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def _copy_url(case, reference: int) -> str:
    return f"/api/v1/safety/cases/{case.pk}/literature-copies/{reference}/"


# --- 1. the copy of an article through the API ------------------------------------------------------------------


def test_the_copy_of_an_article_downloads_through_the_api_for_pv_only_and_audited(api_for, make_case, users):
    """An integration attached the copy of an article (C.4.r.2) through the API and saw it in the case's
    `literature_copies`, but could not fetch it back: only the case page offered the download. Now
    …/literature-copies/{reference}/ answers the PDF under its own name, for PV only, each download audited as the
    page's is."""
    case = make_case(literature="\n".join(REFERENCES))
    copy = services.attach_literature_copy(users["pv"], case, 2, _pdf())
    # a name as an older upload or an import may have stored it: a quote, a semicolon, a line break
    CaseFile.objects.filter(pk=copy.pk).update(name='王"病历;\r\nx.pdf')
    reads = AuditEntry.objects.filter(action="read_personal", object_id=str(case.pk), actor=users["pv"])
    before = reads.count()

    response = api_for("pv").get(_copy_url(case, 2), HTTP_ACCEPT="application/pdf")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf" and response["Content-Length"] == str(len(PDF))
    disposition = response["Content-Disposition"]
    assert disposition == ("attachment; filename=\"x.pdf\"; "
                           "filename*=UTF-8''%E7%8E%8B%22%E7%97%85%E5%8E%86%3B%0D%0Ax.pdf")  # fmt: skip
    assert response["X-Content-Type-Options"] == "nosniff" and "no-store" in response["Cache-Control"]
    assert reads.count() == before + 1
    entry = reads.latest("seq")
    assert entry.extra.get("file") == '王"病历;\r\nx.pdf' and entry.extra.get("fields") == ["files"]

    # the same policy as the page's download: the overseeing roles and everyone else are refused, unaudited
    for role in ("manager", "auditor", "admin", "agent"):
        assert api_for(role).get(_copy_url(case, 2)).status_code == 403, role
    assert reads.count() == before + 1
    # a reference without a copy, a reference the case does not have, a case without any: 404
    assert api_for("pv").get(_copy_url(case, 1)).status_code == 404
    assert api_for("pv").get(_copy_url(case, 3)).status_code == 404
    assert api_for("pv").get(_copy_url(case, 0)).status_code == 404
    bare = make_case()
    missing = api_for("pv").get(_copy_url(bare, 1))
    assert missing.status_code == 404 and missing.json()["detail"] == "The case has no copy of that article."


def test_the_copy_download_is_in_the_openapi_schema(api_for):
    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)

    operation = spec["paths"]["/api/v1/safety/cases/{id}/literature-copies/{reference}/"]["get"]

    assert "application/pdf" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} == {"id", "reference"}
    assert "404" in operation["responses"]


def test_the_page_download_keeps_a_safe_name_too(client_for, make_case, users):
    """The page's download and the API's share one response: a name with a quote or a semicolon cannot break the
    header."""
    case = make_case(literature=REFERENCES[0])
    copy = services.attach_literature_copy(users["pv"], case, 1, _pdf())
    CaseFile.objects.filter(pk=copy.pk).update(name='a"b;c.pdf')

    response = client_for("pv").get(reverse("safety:case-file", args=[copy.pk]))

    assert response.status_code == 200
    assert re.match(r'attachment; filename="abc\.pdf"; filename\*=UTF-8\'\'a%22b%3Bc\.pdf$',
                    response["Content-Disposition"])  # fmt: skip


_ = sign_code  # used by the later sections
