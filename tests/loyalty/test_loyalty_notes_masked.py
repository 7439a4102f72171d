"""What leadership and reps write on a loyalty member's ledger and redemptions about the customer — a manual points
correction's reason (客户王主任 139… 来电投诉补分), a redemption's decision and its delivery note (快递至王主任 139…,
li.na@…) — was read in clear by the roles that read the loyalty programme but see personal data masked (the analyst,
the auditor) on the member page, in the loyalty API and the audit trail: the contact details in them are masked for
them, as a referral's note is; the roles that see personal data read them as typed, and what is stored is not
changed. Only roles that see personal data write them (leadership, the member's owner)."""

from __future__ import annotations

import pytest

from pharmacrm.loyalty import services
from pharmacrm.loyalty.models import EntryKind, PointsEntry, Redemption
from tests.api.conftest import api_for  # noqa: F401  (fixture)
from tests.loyalty.test_loyalty import give, member, reward, shop  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

REASON = "客户王主任 139-1234-5678 来电投诉补分"
REASON_SHOWN = "客户王主任 139****5678 来电投诉补分"
REJECTED = "改寄李主任 138 0013 8000"
REJECTED_SHOWN = "改寄李主任 138****8000"
DELIVERY = "快递至王主任 139-1234-5678，回执已发 li.na@example.com"
DELIVERY_SHOWN = "快递至王主任 139****5678，回执已发 l***@example.com"
CLEAR = ("139-1234-5678", "138 0013 8000", "li.na@example.com")


@pytest.fixture
def noted(users, member, reward):  # noqa: F811
    give(member, 500, kind=EntryKind.EARN)
    services.adjust(users["manager"], member, 20, REASON)
    delivered = services.request_redemption(users["rep"], member, reward)
    delivered = services.decide(users["manager"], delivered, approve=True, version=delivered.version)
    delivered = services.fulfil(users["rep"], delivered, DELIVERY, version=delivered.version)
    rejected = services.request_redemption(users["rep"], member, reward)
    rejected = services.decide(users["manager"], rejected, approve=False, note=REJECTED, version=rejected.version)
    return member, delivered, rejected


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_ledger_and_redemption_notes_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, noted, role  # noqa: F811
):
    joined, delivered, rejected = noted
    page = client_for(role).get(f"/loyalty/members/{joined.pk}/").content.decode()
    assert REASON_SHOWN in page and REJECTED_SHOWN in page  # the ledger: the correction, the points given back
    api = api_for(role)
    entries = [e["reason"] for e in api.get(f"/api/v1/loyalty/members/{joined.pk}/").json()["entries"]]
    assert REASON_SHOWN in entries and REJECTED_SHOWN in entries
    assert api.get(f"/api/v1/loyalty/redemptions/{delivered.pk}/").json()["delivery_note"] == DELIVERY_SHOWN
    assert api.get(f"/api/v1/loyalty/redemptions/{rejected.pk}/").json()["decision_note"] == REJECTED_SHOWN
    texts = [page, str(api.get(f"/api/v1/loyalty/members/{joined.pk}/").json()),
             str(api.get("/api/v1/loyalty/redemptions/").json())]  # fmt: skip
    for kind, pk in (("loyalty.redemption", delivered.pk), ("loyalty.redemption", rejected.pk),
                     ("loyalty.pointsentry", PointsEntry.objects.get(reason=REASON).pk)):  # fmt: skip
        query = {"object_type": kind, "object_id": pk}
        texts += [client_for("auditor").get("/accounts/audit/", query).content.decode(),
                  str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    assert DELIVERY_SHOWN in texts[3] and REJECTED_SHOWN in texts[6] and REASON_SHOWN in texts[8]
    for text in texts:
        assert not any(clear in text for clear in CLEAR), text


def test_roles_that_see_personal_data_read_them_as_typed(client_for, api_for, noted):  # noqa: F811
    joined, delivered, rejected = noted
    page = client_for("rep").get(f"/loyalty/members/{joined.pk}/").content.decode()
    assert REASON in page and REJECTED in page
    assert api_for("manager").get(f"/api/v1/loyalty/redemptions/{delivered.pk}/").json()["delivery_note"] == DELIVERY
    entries = [e["reason"] for e in api_for("rep").get(f"/api/v1/loyalty/members/{joined.pk}/").json()["entries"]]
    assert REASON in entries
    query = {"object_type": "loyalty.redemption", "object_id": delivered.pk}
    assert DELIVERY in str(api_for("admin").get("/api/v1/audit/", query).json()["results"])
    assert Redemption.objects.get(pk=delivered.pk).delivery_note == DELIVERY
