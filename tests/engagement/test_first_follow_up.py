"""The new customer's first follow-up (seed 000 §4.1: a new customer is followed up within 1–3 days of the first
contact): the customers awaiting it are listed at /interactions/follow-ups/, and a customer's 360 page says by
when, or that it is overdue, until an interaction with the customer is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution, Person
from pharmacrm.engagement import services

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
URL = "/interactions/follow-ups/"


def _recorded_days_ago(customer, days: int) -> None:
    type(customer).objects.filter(pk=customer.pk).update(created_at=timezone.now() - dt.timedelta(days=days))


def _page(client, **params) -> str:
    response = client.get(URL, params, **EN)
    assert response.status_code == 200
    return response.content.decode()


def _embed(client, **params) -> str:
    return client.get("/interactions/", {"embed": "1", **params}, **EN).content.decode()


def _visit(user, **customer) -> None:
    services.record_interaction(user, {"channel": "visit", "subject": "首次拜访",
                                       "received_at": timezone.now() - dt.timedelta(minutes=5), **customer})  # fmt: skip


def test_a_new_hospital_is_listed_with_the_day_its_first_follow_up_is_due(client_for, xiehe):
    due = (timezone.localdate() + dt.timedelta(days=3)).isoformat()

    page = _page(client_for("rep"))

    assert "北京协和医院" in page and "张伟" in page
    assert due in page and "Overdue" not in page
    department = Institution.objects.get(name="心内科")  # followed up through its hospital
    assert f'data-kind="institution" data-id="{department.pk}"' not in page
    note = _embed(client_for("rep"), institution=xiehe.pk)
    assert f"First follow-up due by {due}" in note


def test_a_visit_to_its_doctor_ends_the_wait_for_the_hospital_and_the_doctor(client_for, users, xiehe):
    doctor = Person.objects.get(name="张伟")
    _visit(users["agent"], person=doctor)  # a colleague's visit counts for the rep too

    page = _page(client_for("rep"))

    assert "北京协和医院" not in page and "张伟" not in page
    assert "No new customer awaits a first follow-up." in page
    assert "First follow-up" not in _embed(client_for("rep"), institution=xiehe.pk)
    assert "First follow-up" not in _embed(client_for("rep"), person=doctor.pk)


def test_a_visit_to_a_department_counts_for_its_hospital(client_for, users, xiehe):
    _visit(users["agent"], institution=Institution.objects.get(name="心内科"))

    page = _page(client_for("rep"))

    assert f'data-kind="institution" data-id="{xiehe.pk}"' not in page
    assert "张伟" in page  # the doctor was not met


def test_after_three_days_the_follow_up_is_overdue_on_the_list_and_the_customer_page(client_for, xiehe):
    _recorded_days_ago(xiehe, 4)
    due = (timezone.localdate() - dt.timedelta(days=1)).isoformat()

    page = _page(client_for("rep"))
    row = page.split(f'data-id="{xiehe.pk}"')[1].split("</tr>")[0]
    assert due in row and "Overdue" in row
    note = _embed(client_for("rep"), institution=xiehe.pk)
    assert f"First follow-up overdue: a new customer is followed up within 3 days of being recorded, by {due}" in note


def test_the_longest_waiting_customer_comes_first(client_for, xiehe, ruijin):
    _recorded_days_ago(ruijin, 2)

    page = _page(client_for("admin"))

    assert page.index("瑞金医院") < page.index("北京协和医院")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: Institution.objects.filter(pk=c.pk).update(tier="regular"), id="not-a-new-customer"),
        pytest.param(lambda c: Institution.objects.filter(pk=c.pk).update(source="import"), id="imported"),
        pytest.param(lambda c: _recorded_days_ago(c, 31), id="recorded-too-long-ago"),
    ],
)
def test_customers_that_are_no_first_contact_are_not_listed(client_for, ruijin, change):
    change(ruijin)

    assert "瑞金医院" not in _page(client_for("admin"))
    assert "First follow-up" not in _embed(client_for("admin"), institution=ruijin.pk)


def test_a_customer_merged_away_is_not_listed(client_for, users, ruijin):
    duplicate = customers.create_institution(users["admin"], {"name": "瑞金医院分部", "kind": "hospital",
                                                              "region": ruijin.region})  # fmt: skip
    customers.merge(users["admin"], Institution.objects.get(pk=ruijin.pk), duplicate)

    page = _page(client_for("admin"))

    assert "瑞金医院分部" not in page and "瑞金医院" in page


def test_a_rep_sees_the_customers_of_the_territory_only_and_may_narrow_to_their_own(client_for, users, xiehe, ruijin):
    page = _page(client_for("rep"))
    assert "北京协和医院" in page and "瑞金医院" not in page

    assert "北京协和医院" not in _page(client_for("rep"), mine="on")
    Institution.objects.filter(pk=xiehe.pk).update(owner=users["rep"])
    mine = _page(client_for("rep"), mine="on")
    assert "北京协和医院" in mine and "张伟" not in mine


def test_the_customer_page_says_nothing_of_a_customer_the_user_may_not_see(client_for, ruijin):
    assert "First follow-up" not in _embed(client_for("rep"), institution=ruijin.pk)


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_every_role_reads_the_list_and_only_those_who_record_interactions_get_the_button(client_for, xiehe, role):
    page = _page(client_for(role))

    assert "北京协和医院" in page
    recorders = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep"}
    assert (f"/interactions/new/?institution={xiehe.pk}" in page) == (role in recorders)


def test_the_page_needs_a_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_is_in_chinese_by_default(client_for, xiehe):
    page = client_for("rep").get(URL).content.decode()

    assert "首次跟进" in page and "First follow-ups" not in page
    assert "新客户应在录入后 3 天内跟进" in client_for("rep").get(
        "/interactions/", {"embed": "1", "institution": xiehe.pk}).content.decode()  # fmt: skip


def test_the_list_reads_the_database_a_fixed_number_of_times(client_for, users, xiehe, django_assert_max_num_queries):
    for i in range(15):
        customers.create_institution(users["admin"], {"name": f"新诊所{i}", "kind": "clinic", "region": xiehe.region})
    client = client_for("rep")
    client.get(URL)  # warm the session and caches

    with django_assert_max_num_queries(12):
        page = _page(client)
    assert page.count('class="follow-up-row"') == 17  # the hospital, its doctor and the 15 clinics


# --- the morning reminder -----------------------------------------------------------------------------------


def _reminders(user):
    from pharmacrm.notify.models import Notification

    return list(Notification.objects.filter(recipient=user, kind="follow-up.due"))


def test_the_owner_is_reminded_once_a_day_of_the_follow_ups_due_today_or_overdue(users, xiehe, client_for):
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.engagement import followup

    rep = users["rep"]
    Institution.objects.filter(pk=xiehe.pk).update(owner=rep)  # recorded three days ago: due today
    Person.objects.filter(name="张伟").update(owner=rep)  # five days ago: overdue
    _recorded_days_ago(xiehe, 3)
    _recorded_days_ago(Person.objects.get(name="张伟"), 5)
    fresh = customers.create_institution(users["admin"], {"name": "新开诊所", "kind": "clinic", "region": xiehe.region,
                                                          "owner": rep})  # fmt: skip

    assert followup.remind() == 1
    assert followup.remind() == 0  # the same day again: nothing more

    [note] = _reminders(rep)
    assert note.url == "/interactions/follow-ups/?mine=on"
    page = client_for("rep").get("/notifications/", **EN).content.decode()
    assert "2 new customers of yours await their first follow-up" in page and "Overdue: 1." in page
    assert "您负责的 2 位新客户待首次跟进" in client_for("rep").get("/notifications/").content.decode()
    entry = AuditEntry.objects.filter(actor_name="worker", object_type="notify.notification").latest("seq")
    assert entry.extra["owner"] == [rep.pk] and entry.extra["count"] == 2 and entry.extra["kind"] == "follow-up.due"
    assert fresh.pk  # recorded today, due in three days: not in the reminder's count
    trail = client_for("auditor").get("/accounts/audit/", **EN)
    assert trail.status_code == 200 and "follow-up.due" in trail.content.decode()

    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    assert followup.remind(today=tomorrow) == 1  # the next morning, again
    assert len(_reminders(rep)) == 2


def test_nobody_is_reminded_of_customers_followed_up_not_yet_due_or_without_an_owner(users, xiehe):
    from pharmacrm.engagement import followup

    _recorded_days_ago(xiehe, 6)  # overdue, but nobody owns it (its doctor neither)
    clinic = customers.create_institution(users["admin"], {"name": "新开诊所", "kind": "clinic", "region": xiehe.region,
                                                           "owner": users["kam"]})  # fmt: skip
    visited = customers.create_institution(users["admin"], {"name": "已拜访诊所", "kind": "clinic",
                                                            "region": xiehe.region, "owner": users["rep"]})  # fmt: skip
    _recorded_days_ago(visited, 4)
    _visit(users["rep"], institution=visited)

    assert followup.remind() == 0
    assert _reminders(users["kam"]) == [] and _reminders(users["rep"]) == [] and clinic.pk
