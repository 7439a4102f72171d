"""A quality review's findings (未核实来电人 139… 的身份), the agent's appeal and the decision on it are written about a
ticket, its customer included: they reached the readers who see personal data masked (the agent judged, the product
expert who reviews, the analyst, the auditor) in clear on the ticket's quality panel, the quality page and its export,
/api/v1/service/quality-reviews/ and the audit trail. Masked for them now, as the ticket's text is; the roles that see
personal data read them as typed; a product expert correcting a review sends the masks back and the stored details
stay. The November of test_performance.py: T1 and T2 handled by a1."""

# ruff: noqa: F811 — the fixtures imported from test_performance.py are parameters here
from __future__ import annotations

import io

import pytest
from django.urls import reverse

from pharmacrm.servicedesk import quality
from pharmacrm.servicedesk.models import QualityReview
from tests.servicedesk.test_performance import api_client, desk, november, page_client  # noqa: F401 — fixtures
from tests.servicedesk.test_quality_reviews import GOOD, form

pytestmark = pytest.mark.django_db

FINDING = "未核实来电人 139-1234-5678 的身份，答复寄到 li.na@example.com"
FINDING_SHOWN = "未核实来电人 139****5678 的身份，答复寄到 l***@example.com"
APPEAL = "来电人已报身份证 110105197503151236 核实"
APPEAL_SHOWN = "来电人已报身份证 110***********1236 核实"
ANSWER = "已回拨 138 0013 8000 核实：未核实身份"
ANSWER_SHOWN = "已回拨 138****8000 核实：未核实身份"
CLEAR = ("139-1234-5678", "li.na@example.com", "110105197503151236", "138 0013 8000")
API = "/api/v1/service/quality-reviews/"


@pytest.fixture
def appealed(users, desk, november):
    review = quality.review(users["expert"], november["T2"], {**GOOD, "compliant": False, "comment": FINDING})
    quality.appeal(desk["a1"], review, APPEAL, version=review.version)
    quality.decide_appeal(users["admin"], review, False, ANSWER, version=review.version)
    return QualityReview.objects.get(pk=review.pk)


def _sheet_text(content: bytes) -> str:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(content))
    return " ".join(str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row if c)


@pytest.mark.parametrize("who", ["a1", "expert", "analyst", "auditor"])
def test_findings_appeal_and_decision_are_masked_for_readers_who_see_personal_data_masked(
    users, desk, november, appealed, who
):
    user = desk[who] if who in desk else users[who]
    client, api = page_client(user), api_client(user)
    ticket = november["T2"]
    texts = [client.get(reverse("servicedesk:ticket", args=[ticket.pk])).content.decode(),
             client.get(reverse("servicedesk:quality"), {"period": "2026-11"}).content.decode(),
             _sheet_text(client.get(reverse("servicedesk:quality-export"), {"period": "2026-11"}).content)]  # fmt: skip
    assert all(FINDING_SHOWN in text for text in texts), [FINDING_SHOWN in text for text in texts]
    assert APPEAL_SHOWN in texts[0] and ANSWER_SHOWN in texts[0]
    shown = api.get(f"{API}{appealed.pk}/").json()
    assert (shown["comment"], shown["appeal"], shown["appeal_answer"]) == (FINDING_SHOWN, APPEAL_SHOWN, ANSWER_SHOWN)
    texts += [str(shown), str(api.get(API, {"period": "2026-11"}).json())]
    query = {"object_type": "servicedesk.qualityreview", "object_id": appealed.pk}
    texts += [page_client(users["auditor"]).get("/accounts/audit/", query).content.decode(),
              str(api_client(users["auditor"]).get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    assert FINDING_SHOWN in texts[-1] and APPEAL_SHOWN in texts[-1] and ANSWER_SHOWN in texts[-1]
    for text in texts:
        assert not any(clear in text for clear in CLEAR)


def test_the_roles_that_see_personal_data_read_them_as_typed(users, november, appealed):
    manager = page_client(users["manager"])
    page = manager.get(reverse("servicedesk:ticket", args=[november["T2"].pk])).content.decode()
    assert all(text in page for text in (FINDING, APPEAL, ANSWER))
    assert FINDING in _sheet_text(manager.get(reverse("servicedesk:quality-export"), {"period": "2026-11"}).content)
    shown = api_client(users["manager"]).get(f"{API}{appealed.pk}/").json()
    assert (shown["comment"], shown["appeal"], shown["appeal_answer"]) == (FINDING, APPEAL, ANSWER)
    query = {"object_type": "servicedesk.qualityreview", "object_id": appealed.pk}
    assert FINDING in str(api_client(users["admin"]).get("/api/v1/audit/", query).json()["results"])


def test_a_product_expert_correcting_the_masked_findings_keeps_the_stored_details(users, november):
    ticket = november["T1"]
    review = quality.review(users["expert"], ticket, {**GOOD, "compliant": False, "comment": FINDING})
    expert = page_client(users["expert"])
    page = expert.get(reverse("servicedesk:ticket", args=[ticket.pk])).content.decode()
    assert FINDING_SHOWN in page and "139-1234-5678" not in page  # the correction form too
    sent = expert.post(reverse("servicedesk:ticket-quality", args=[ticket.pk]), form(
        {**GOOD, "compliant": False, "comment": FINDING_SHOWN + "。已复核", "version": review.version}))
    assert sent.status_code == 302, sent.content.decode()[:2000]
    review.refresh_from_db()
    assert review.comment == FINDING + "。已复核"
    api = api_client(users["expert"])
    shown = api.get(f"{API}{review.pk}/").json()
    sent = api.patch(f"{API}{review.pk}/", {"comment": shown["comment"] + "，已培训", "version": shown["version"]},
                     format="json")  # fmt: skip
    assert sent.status_code == 200, sent.content
    review.refresh_from_db()
    assert review.comment == FINDING + "。已复核，已培训"
