"""Annual communication plans per customer class (seed 002 三.(一): a plan per class with goal, channel and
frequency) and the check of contacts against them (三.(二)): /interactions/plans/ (managers edit, every owner reads),
/interactions/plan-due/ (the customers behind, the most behind first; compliance per owner for managers), the note
on a hospital's Customer 360 page, and the morning reminder."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution, Person
from pharmacrm.engagement import plans, services
from pharmacrm.engagement.models import CommunicationPlan

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
YEAR = timezone.localdate().year


def _classed(institution, klass: str, period: str = f"{YEAR - 1}H2") -> None:
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.models import Score

    Score.objects.create(institution=institution, kind="evaluation", period=period, model=evaluation.active_model("evaluation"),
                         as_of=dt.date(YEAR - 1, 12, 31), score=Decimal("80"), klass=klass)  # fmt: skip


MONTHLY = (("visit", 1, "month"), ("phone", 2, "month"))
# a year's lines: the page tests read the same whatever today's date (a month's line shows last month's miss in the
# first days of a month)
YEARLY = (("visit", 1, "year"), ("phone", 2, "year"))


def _plan(user, klass="A", lines=YEARLY, **extra) -> CommunicationPlan:
    data = {"year": YEAR, "klass": klass, "goal": "了解用药需求", **extra,
            "lines": [{"channel": c, "minimum": n, "period": p} for c, n, p in lines]}  # fmt: skip
    return plans.save_plan(user, data)


def _contact(user, channel="visit", days_ago=0, **customer) -> None:
    services.record_interaction(user, {"channel": channel, "subject": "例行拜访",
                                       "received_at": timezone.now() - dt.timedelta(days=days_ago, minutes=5), **customer})  # fmt: skip


def _due(client, **params) -> str:
    response = client.get("/interactions/plan-due/", params, **EN)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture(params=["looked-up", "tallied"])
def counting(request, monkeypatch):
    """The two ways the lists count contacts: each customer's by index look-ups (a short list), or every window's
    at once (a long one)."""
    if request.param == "tallied":
        monkeypatch.setattr(plans, "FEW_CUSTOMERS", 0)


@pytest.fixture
def owned(users, xiehe, ruijin):
    """协和 (class A) owned by the rep; 瑞金 (class A) by the kam; both under the class A plan."""
    Institution.objects.filter(pk=xiehe.pk).update(owner=users["rep"])
    Institution.objects.filter(pk=ruijin.pk).update(owner=users["kam"])
    _classed(xiehe, "A")
    _classed(ruijin, "A")
    return _plan(users["manager"])


def test_a_customer_short_of_its_plan_is_listed_with_what_is_missing(client_for, users, xiehe, owned, counting):
    page = _due(client_for("rep"))

    row = page.split(f'data-id="{xiehe.pk}"')[1].split("</tr>")[0]
    assert "北京协和医院" in row and 'data-shortfall="3"' in page
    assert "Visit: 0 of 1 per year" in row and "Phone call: 0 of 2 per year" in row
    assert f"/interactions/new/?institution={xiehe.pk}" in row
    assert "瑞金医院" not in page  # the kam's, out of the rep's territory


def test_a_visit_to_its_doctor_counts_and_the_plan_met_ends_the_row(client_for, users, xiehe, owned, counting):
    doctor = Person.objects.get(name="张伟")
    _contact(users["agent"], "visit", person=doctor)  # a colleague's visit to the hospital's doctor counts
    _contact(users["rep"], "phone", institution=Institution.objects.get(name="心内科"))  # its department's too

    row = _due(client_for("rep")).split(f'data-id="{xiehe.pk}"')[1].split("</tr>")[0]
    assert "Visit:" not in row and "Phone call: 1 of 2 per year" in row

    _contact(users["rep"], "phone", institution=xiehe)
    page = _due(client_for("rep"))
    assert f'data-id="{xiehe.pk}"' not in page
    assert "Every customer is on track with the communication plan." in page


def test_a_branch_hospitals_department_counts_and_contacts_of_another_year_or_channel_do_not(
    client_for, users, xiehe, owned, counting
):
    """The list's shortfall and the row's counts (counted for the page's customers) agree, however the list counted:
    a call to a department of the hospital's branch (two levels down) counts; last year's call and a WeChat message
    do not."""
    branch = customers.create_institution(users["admin"], {"name": "北京协和医院西院", "kind": "hospital",
                                                           "region": xiehe.region, "parent": xiehe})  # fmt: skip
    ward = customers.create_institution(users["admin"], {"name": "西院心内科", "kind": "department", "region": xiehe.region,
                                                         "parent": branch})  # fmt: skip
    _contact(users["rep"], "phone", institution=ward)
    _contact(users["rep"], "phone", days_ago=400, institution=xiehe)
    _contact(users["rep"], "wechat", institution=xiehe)

    row = _due(client_for("rep")).split('class="plan-due-row"')[1].split("</tr>")[0]
    assert f'data-id="{xiehe.pk}" data-shortfall="2"' in row
    assert "Visit: 0 of 1 per year" in row and "Phone call: 1 of 2 per year" in row


def test_only_the_customers_of_the_plans_class_are_listed(client_for, users, xiehe, owned, counting):
    from pharmacrm.keyaccounts.models import Score

    Score.objects.filter(institution=xiehe).update(klass="C")

    assert f'data-id="{xiehe.pk}"' not in _due(client_for("rep"))


def test_the_most_behind_comes_first_and_managers_see_every_owner_with_a_summary(
    client_for, users, xiehe, ruijin, owned, counting
):
    _contact(users["rep"], "phone", institution=xiehe)  # 协和 misses 2 contacts, 瑞金 3

    page = _due(client_for("manager"))

    assert page.index("瑞金医院") < page.index("北京协和医院")
    summary = page.split('class="table plan-summary-table"')[1]
    assert f'data-owner="{users["rep"].pk}"><td>rep</td><td>1</td><td>1</td><td>0%' in summary
    only_kam = _due(client_for("manager"), owner=users["kam"].pk)
    assert "瑞金医院" in only_kam.split("plan-summary-table")[0] and "北京协和医院" not in only_kam.split("plan-summary-table")[0]
    assert "plan-summary-table" not in _due(client_for("rep"))  # owners see their own list only


def test_a_customer_under_two_plans_is_listed_under_each(client_for, users, xiehe, ruijin, owned, counting):
    Institution.objects.filter(pk=xiehe.pk).update(tier="vip")
    _plan(users["manager"], klass="", tier="vip", lines=(("wechat", 4, "year"),))

    page = _due(client_for("manager"))

    assert page.count(f'data-id="{xiehe.pk}"') == 2
    assert page.index('data-shortfall="4"') < page.index('data-shortfall="3"')  # the vip plan misses more
    assert "WeChat: 0 of 4 per year" in page
    assert page.count(f'data-id="{ruijin.pk}"') == 1


def test_the_filters_narrow_by_channel_and_class(client_for, users, xiehe, owned, counting):
    _contact(users["rep"], "visit", institution=xiehe)

    assert f'data-id="{xiehe.pk}"' in _due(client_for("rep"), channel="phone")
    assert f'data-id="{xiehe.pk}"' not in _due(client_for("rep"), channel="visit")
    assert f'data-id="{xiehe.pk}"' not in _due(client_for("rep"), klass="B")


def _monthly(plan) -> CommunicationPlan:
    data = {"year": plan.year, "klass": plan.klass, "goal": plan.goal,
            "lines": [{"channel": c, "minimum": n, "period": p} for c, n, p in MONTHLY]}  # fmt: skip
    return plans.save_plan(CommunicationPlan.objects.get(pk=plan.pk).created_by, data, CommunicationPlan.objects.get(pk=plan.pk))


def test_last_periods_miss_is_shown_overdue_for_a_while(users, xiehe, owned, counting):
    plan = CommunicationPlan.objects.prefetch_related("lines").get(pk=_monthly(owned).pk)
    found = plans.windows(plan, dt.date(YEAR, 3, 10))
    assert [(w.line.channel, w.overdue, w.start) for w in found] == [
        ("visit", False, dt.date(YEAR, 3, 1)), ("visit", True, dt.date(YEAR, 2, 1)),
        ("phone", False, dt.date(YEAR, 3, 1)), ("phone", True, dt.date(YEAR, 2, 1)),
    ]  # fmt: skip
    assert [w.overdue for w in plans.windows(plan, dt.date(YEAR, 3, 16))] == [False, False]  # 15 days on: gone
    assert plans.windows(plan, dt.date(YEAR + 1, 1, 5))[0].start == dt.date(YEAR, 12, 1)  # December, last year's plan


def test_the_hospitals_page_says_what_the_plan_asks_and_how_far_along_it_is(client_for, users, xiehe, owned):
    _contact(users["rep"], "phone", institution=xiehe)

    note = client_for("rep").get("/interactions/", {"embed": "1", "institution": xiehe.pk}, **EN).content.decode()

    assert f"Communication plan {YEAR} (class A):" in note
    assert "Visit: 0 of 1 per year" in note and "Phone call: 1 of 2 per year" in note
    department = Institution.objects.get(name="心内科")
    assert "Communication plan" not in client_for("rep").get(
        "/interactions/", {"embed": "1", "institution": department.pk}, **EN).content.decode()


def test_the_list_is_counted_in_the_database_whatever_the_number_of_customers(client_for, users, xiehe, owned):
    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            _due(client_for("rep"))
        return len(seen)

    queries()  # the first page of a session reads what it keeps (the user's roles, the territory)
    before = queries()
    for i in range(12):
        clinic = customers.create_institution(users["admin"], {"name": f"社区诊所{i}", "kind": "clinic",
                                                               "region": xiehe.region, "owner": users["rep"]})  # fmt: skip
        _classed(clinic, "A")

    page = _due(client_for("rep"))
    assert page.count('class="plan-due-row"') == 13
    assert queries() == before


@pytest.mark.parametrize(("few", "queries"), [(plans.FEW_CUSTOMERS, 11), (0, 10)], ids=["looked-up", "tallied"])
def test_a_page_of_the_list_takes_the_same_few_queries_for_two_plans_and_any_number_of_customers(
    users, xiehe, owned, django_assert_num_queries, few, queries, monkeypatch
):
    monkeypatch.setattr(plans, "FEW_CUSTOMERS", few)
    _plan(users["manager"], klass="", tier="regular", lines=(("wechat", 1, "year"),))
    for i in range(20):
        customers.create_institution(users["admin"], {"name": f"社区诊所{i}", "kind": "clinic", "region": xiehe.region,
                                                      "owner": users["manager"], "tier": "regular"})  # fmt: skip
    query = plans.Query(scope="all")

    # the class period (2: the evaluation in force, else the latest half-year), the plans and their lines (2), each
    # plan's customers (2), their contacts (each plan's customers' counts: 2; or every window's at once: 1), each
    # plan's counts for the page (2) and the customers (1)
    with django_assert_num_queries(queries):
        rows_qs, by_id, found, _period = plans.behind(users["manager"], query)
        rows = plans.load_rows(list(rows_qs[:10]), by_id, found) and len(rows_qs)
    assert rows == 22  # the 20 clinics under the tier plan, 协和 and 瑞金 under the class A one


# --- the morning reminder -----------------------------------------------------------------------------------


def _reminders(user):
    from pharmacrm.notify.models import Notification

    return list(Notification.objects.filter(recipient=user, kind="communication.due"))


def test_owners_behind_in_a_periods_last_week_are_reminded_once_a_day(client_for, users, xiehe, owned, counting):
    _monthly(owned)
    last_week = dt.date(YEAR, 3, 27)

    assert plans.remind(today=dt.date(YEAR, 3, 10)) == 2  # February was missed (overdue): the rep and the kam
    assert plans.remind(today=dt.date(YEAR, 3, 20)) == 0  # mid-month, nothing missed shown: no reminder
    assert plans.remind(today=last_week) == 2
    assert plans.remind(today=last_week) == 0  # the same day again: nothing more

    [_, note] = _reminders(users["rep"])
    assert note.url == "/interactions/plan-due/?scope=mine"
    page = client_for("rep").get("/notifications/", **EN).content.decode()
    assert "1 customer of yours is behind the communication plan" in page
    entry = AuditEntry.objects.filter(actor_name="worker", object_type="notify.notification").latest("seq")
    assert entry.extra["kind"] == "communication.due" and sorted(entry.extra["owner"]) == sorted([users["rep"].pk, users["kam"].pk])


def test_a_worker_killed_mid_run_reminds_the_others_only_once(users, xiehe, owned):
    from pharmacrm.notify import services as notify

    _monthly(owned)
    day = dt.date(YEAR, 3, 27)
    notify.send([users["rep"]], kind="communication.due", title="x", obj=("engagement.communicationplan", day.isoformat()))

    assert plans.remind(today=day) == 1  # the kam only: the rep was told before the worker died
    assert len(_reminders(users["rep"])) == 1 and len(_reminders(users["kam"])) == 1


def test_the_demo_loads_the_default_plan_per_class_once(users):
    from pharmacrm.engagement import demo

    assert demo.load() == 4
    assert demo.load() == 0
    a = CommunicationPlan.objects.get(year=YEAR, klass="A")
    assert sorted((line.channel, line.minimum, line.period) for line in a.lines.all()) == [("phone", 2, "month"), ("visit", 1, "month")]
    assert [line.period for line in CommunicationPlan.objects.get(klass="D").lines.all()] == ["half"]
