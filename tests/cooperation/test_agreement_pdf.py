"""The cooperation agreement's generated text (合作协议文本): a bilingual PDF read back with pypdf — the number, both
parties, the amounts, the projects — downloaded by who may read the agreement (audited), 404 for an agreement
outside the reader's scope, 403 for a role without cooperation — on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from pharmacrm.cooperation import agreement_pdf
from pharmacrm.cooperation.models import Agreement
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.wording import company_name
from pharmacrm.customers.models import Institution

from .test_cooperation import in_force, running_project, world  # noqa: F401 — the fixture

pytestmark = pytest.mark.django_db


def text_of(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")


def test_the_pdf_says_the_number_the_parties_the_amounts_and_the_projects(world, users):  # noqa: F811
    ours, xiehe = world["ours"], world["xiehe"]
    Institution.objects.filter(pk=xiehe.pk).update(legal_representative="张院长", address="北京市东城区帅府园1号")
    running_project(users["rep"], in_force(users["rep"], ours))
    ours = Agreement.objects.get(pk=ours.pk)
    text = text_of(agreement_pdf.render(ours))
    assert ours.number in text and "合作协议" in text and "Cooperation Agreement" in text
    assert xiehe.name in text and xiehe.credit_code in text and company_name()[0] in text
    assert "张院长" in text and "北京市东城区帅府园1号" in text  # the legal representative and the address
    assert "¥120,000.00" in text  # the agreement's amount
    assert "学术会议" in text and "举办两场学术会议" in text and "¥50,000.00" in text  # the project, its goal, budget
    assert "验收后30日内付款" in text and "双方权利义务" in text  # the payment terms and the terms as recorded


@pytest.mark.parametrize("role, status", [
    ("rep", 200), ("manager", 200), ("auditor", 200), ("analyst", 200), ("kam", 404), ("agent", 403), ("pv", 403),
])  # fmt: skip
def test_who_downloads_the_agreement_text(world, client_for, role, status):  # noqa: F811
    ours = world["ours"]  # the rep's North team's
    r = client_for(role).get(f"/cooperation/{ours.pk}/agreement.pdf")
    assert r.status_code == status
    exported = AuditEntry.objects.filter(action="export", object_type="cooperation.agreement", object_id=str(ours.pk))
    assert exported.exists() == (status == 200)
    if status == 200:
        assert r["Content-Type"] == "application/pdf" and ours.number in r["Content-Disposition"]
        page = client_for(role).get(f"/cooperation/{ours.pk}/").content.decode()
        assert f'href="/cooperation/{ours.pk}/agreement.pdf"' in page
