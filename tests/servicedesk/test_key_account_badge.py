"""Key accounts in the service desk (issue 5 item 9, QA): a key account's ticket carries a "Key account" badge
next to its customer in the queue and on the ticket page, and the queue filters on key accounts. A key account
is a customer with an active key-account file (or a department / person of one), not merely the tier."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution, Person
from pharmacrm.servicedesk import services
from tests.keyaccounts.programme_fixtures import *  # noqa: F403
from tests.keyaccounts.programme_fixtures import sign_code

BADGE = 'class="badge tier-key ka-badge"'


@pytest.fixture
def raise_ticket(users):
    def make(subject, customer=None, *, person=None, assignee="agent"):
        data = {"subject": subject, "channel": "phone", "category": "drug_info", "assignee": users[assignee]}
        if customer is not None:
            data["institution"] = customer
        if person is not None:
            data["person"] = person
        if customer is None and person is None:
            data.update(caller_name="王先生", caller_phone="13900139000")
        return services.create_ticket(users["agent"], data)

    return make


@pytest.fixture
def key_xiehe(listed, xiehe):
    """协和 listed as a key account (approved through the programme)."""
    listed(xiehe)
    return xiehe


def _rows(page: str) -> dict[str, str]:
    """Ticket number → the HTML of its queue row."""
    return dict(re.findall(r'<tr class="ticket-row" data-number="([^"]+)".*?>(.*?)</tr>', page, re.S))


def _en(client, url: str):
    return client.get(url, HTTP_ACCEPT_LANGUAGE="en")


def test_the_queue_marks_the_tickets_of_key_accounts(client_for, raise_ticket, key_xiehe, ruijin):
    key = raise_ticket("协和的问题", key_xiehe)
    other = raise_ticket("瑞金的问题", ruijin)

    page = _en(client_for("agent"), "/service/").content.decode()

    rows = _rows(page)
    assert BADGE in rows[key.number] and "Key account" in rows[key.number]
    assert BADGE not in rows[other.number]


def test_the_ticket_page_shows_the_badge_next_to_the_customer(client_for, raise_ticket, key_xiehe, ruijin):
    key = raise_ticket("协和的问题", key_xiehe)
    other = raise_ticket("瑞金的问题", ruijin)
    client = client_for("agent")

    page = _en(client, f"/service/tickets/{key.pk}/").content.decode()
    customer = page.split('id="facts-title"')[1].split("<dt>")[1]  # the "Customer" entry
    assert key_xiehe.name in customer and BADGE in customer

    assert BADGE not in _en(client, f"/service/tickets/{other.pk}/").content.decode()


def test_a_person_or_department_of_a_key_account_counts_as_one(client_for, raise_ticket, key_xiehe, admin_user):
    doctor = Person.objects.get(institution=key_xiehe)
    department = Institution.objects.get(parent=key_xiehe)
    by_person = raise_ticket("医生来电", person=doctor)
    by_department = raise_ticket("科室来电", department)
    caller = raise_ticket("匿名来电")

    rows = _rows(_en(client_for("agent"), "/service/").content.decode())

    assert BADGE in rows[by_person.number] and BADGE in rows[by_department.number]
    assert BADGE not in rows[caller.number]


def test_the_tier_alone_does_not_make_a_key_account(client_for, raise_ticket, admin_user, ruijin):
    customers.update_institution(admin_user, ruijin, {"tier": "key"}, version=ruijin.version)
    ticket = raise_ticket("瑞金的问题", ruijin)

    rows = _rows(_en(client_for("agent"), "/service/").content.decode())

    assert BADGE not in rows[ticket.number]


def test_the_queue_filters_on_key_accounts(client_for, raise_ticket, key_xiehe, ruijin):
    key = raise_ticket("协和的问题", key_xiehe)
    doctor = raise_ticket("医生来电", person=Person.objects.get(institution=key_xiehe))
    raise_ticket("瑞金的问题", ruijin)
    raise_ticket("匿名来电")
    client = client_for("agent")

    page = _en(client, "/service/?key=on").content.decode()

    assert set(_rows(page)) == {key.number, doctor.number}
    assert 'name="key"' in page and "Key accounts only" in page
    assert len(_rows(_en(client, "/service/").content.decode())) == 4


def test_a_delisted_account_loses_its_badge(client_for, raise_ticket, key_xiehe, users, make_proposal):
    from pharmacrm.keyaccounts import services as ka

    ticket = raise_ticket("协和的问题", key_xiehe)
    proposal = make_proposal(key_xiehe, kind="delist")
    ka.decide(users["manager"], proposal, approve=True, comment="同意", otp_code=sign_code(users["manager"]))

    rows = _rows(_en(client_for("agent"), "/service/").content.decode())

    assert BADGE not in rows[ticket.number]


def test_the_badge_costs_no_query_per_ticket(client_for, raise_ticket, key_xiehe, ruijin):
    client = client_for("agent")
    raise_ticket("协和的问题", key_xiehe)
    client.get("/service/")
    with CaptureQueriesContext(connection) as few:
        client.get("/service/")
    for i in range(12):
        raise_ticket(f"问题{i}", key_xiehe if i % 2 else ruijin)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/service/").content.decode()

    assert page.count(BADGE) == 7
    assert len(many.captured_queries) == len(few.captured_queries)
