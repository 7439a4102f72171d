"""A ticket's edited description is kept in its history and audit entry cut at 200 characters with "…"
(editing._short): a phone number cut there (请回电 1391234…) is no whole number any more and escaped the masks. The
roles that see personal data masked read it masked (请回电 139****…) on the ticket page's history, in
/api/v1/tickets/{id}/events/ and in the audit trail; the roles that see personal data read it as kept."""

from __future__ import annotations

import pytest

from pharmacrm.servicedesk import editing
from tests.servicedesk.conftest import raise_ticket  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

# 200 characters: the text, then the number cut after its seventh digit
BEFORE = "药" * (200 - len("请回电 1391234")) + "请回电 13912345678"
CUT = "请回电 1391234…"


@pytest.fixture
def edited(raise_ticket, xiehe, users):  # noqa: F811
    ticket = raise_ticket(subject="配送延迟", description=BEFORE)
    return editing.edit_ticket(users["manager"], ticket, {"description": "已回电客户"}, version=ticket.version)


@pytest.mark.parametrize("role", ["agent", "auditor"])
def test_a_number_cut_in_the_history_is_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, edited, role
):
    texts = [client_for(role).get(f"/service/tickets/{edited.pk}/").content.decode(),
             str(api_for(role).get(f"/api/v1/tickets/{edited.pk}/events/").json())]  # fmt: skip
    query = {"object_type": "servicedesk.ticket", "object_id": edited.pk}
    texts += [client_for("auditor").get("/accounts/audit/", query).content.decode(),
              str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    for text in texts:
        assert "请回电 139****…" in text and "1391234" not in text


def test_a_number_cut_in_the_history_is_read_as_kept_by_roles_that_see_personal_data(client_for, api_for, edited):
    assert CUT in client_for("manager").get(f"/service/tickets/{edited.pk}/").content.decode()
    assert CUT in str(api_for("manager").get(f"/api/v1/tickets/{edited.pk}/events/").json())
    query = {"object_type": "servicedesk.ticket", "object_id": edited.pk}
    assert CUT in client_for("admin").get("/accounts/audit/", query).content.decode()


# an e-mail address cut before its domain ends: its name (zhang.san) was shown, no whole address for the masks
MAIL_BEFORE = "药" * (200 - len("请联系 zhang.san@exa")) + "请联系 zhang.san@example.com"
MAIL_AT = "药" * (200 - len("请联系 zhang.san@")) + "请联系 zhang.san@example.com"


@pytest.mark.parametrize("role", ["agent", "auditor"])
@pytest.mark.parametrize(("before", "shown"), [(MAIL_BEFORE, "请联系 z***@exa…"), (MAIL_AT, "请联系 z***@…")])
def test_an_address_cut_before_its_domain_in_the_history_is_masked_for_roles_that_see_personal_data_masked(
    raise_ticket, xiehe, users, client_for, api_for, role, before, shown  # noqa: F811
):
    ticket = raise_ticket(subject="配送延迟", description=before)
    ticket = editing.edit_ticket(users["manager"], ticket, {"description": "已回复客户"}, version=ticket.version)
    texts = [client_for(role).get(f"/service/tickets/{ticket.pk}/").content.decode(),
             str(api_for(role).get(f"/api/v1/tickets/{ticket.pk}/events/").json())]  # fmt: skip
    query = {"object_type": "servicedesk.ticket", "object_id": ticket.pk}
    texts += [client_for("auditor").get("/accounts/audit/", query).content.decode(),
              str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    for text in texts:
        assert shown in text and "zhang.san" not in text


def test_an_address_cut_before_its_domain_is_read_as_kept_by_roles_that_see_personal_data(
    raise_ticket, xiehe, users, client_for, api_for  # noqa: F811
):
    ticket = raise_ticket(subject="配送延迟", description=MAIL_BEFORE)
    ticket = editing.edit_ticket(users["manager"], ticket, {"description": "已回复客户"}, version=ticket.version)
    assert "请联系 zhang.san@exa…" in str(api_for("manager").get(f"/api/v1/tickets/{ticket.pk}/events/").json())
    query = {"object_type": "servicedesk.ticket", "object_id": ticket.pk}
    assert "请联系 zhang.san@exa…" in client_for("admin").get("/accounts/audit/", query).content.decode()
