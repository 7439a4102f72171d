"""Customer care on birthdays (seed 002 三.(三).1): /interactions/birthdays/ lists the people whose birthday falls
today or in the next six days among the customers the user (or the user's teams) own — month and day only, so that
the list reveals no more than a masked birthday and is no audited read of personal data."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Person
from pharmacrm.engagement.care import falls_on

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
URL = "/interactions/birthdays/"


def _born(days_from_today: int, year: int = 1975) -> dt.date:
    day = timezone.localdate() + dt.timedelta(days=days_from_today)
    return day.replace(year=year) if not (day.month == 2 and day.day == 29) else dt.date(year, 2, 28)


def _person(admin, institution, name: str, birthday: dt.date | None, **extra) -> Person:
    return customers.create_person(admin, {"name": name, "institution": institution, "birthday": birthday, **extra})


def _page(client, **params) -> str:
    response = client.get(URL, params, **EN)
    assert response.status_code == 200
    return response.content.decode()


def test_the_birthdays_of_the_next_days_among_my_customers_are_listed_soonest_first(users, client_for, xiehe):
    admin, rep = users["admin"], users["rep"]
    in_two = _person(admin, xiehe, "李娜", _born(2), owner=rep)
    today = _person(admin, xiehe, "王芳", _born(0, 1980), owner=rep)
    _person(admin, xiehe, "赵敏", _born(7), owner=rep)  # a week away: not yet
    _person(admin, xiehe, "钱军", _born(-1), owner=rep)  # yesterday: next year's
    _person(admin, xiehe, "孙丽", None, owner=rep)

    page = _page(client_for("rep"))

    assert page.index("王芳") < page.index("李娜")
    assert "赵敏" not in page and "钱军" not in page and "孙丽" not in page
    row = page.split(f'data-id="{in_two.pk}"')[1].split("</tr>")[0]
    assert _born(2).strftime("%m-%d") in row and "In 2 days" in row and "北京协和医院" in row
    assert "Today" in page.split(f'data-id="{today.pk}"')[1].split("</tr>")[0]
    assert "1975" not in page and "1980" not in page  # the year (the age) is not shown
    assert f"/interactions/new/?person={in_two.pk}" in page


def test_only_the_month_and_day_are_read_out_so_nothing_is_audited_as_a_read_of_personal_data(users, client_for, xiehe):
    _person(users["admin"], xiehe, "李娜", _born(1), owner=users["agent"])  # an agent sees birthdays masked
    reads = AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL).count()

    page = _page(client_for("agent"))

    assert "李娜" in page and _born(1).strftime("%m-%d") in page and "Tomorrow" in page
    assert AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL).count() == reads


def test_the_teams_customers_are_listed_when_asked_for(users, client_for, xiehe, team_north):
    _person(users["admin"], xiehe, "李娜", _born(3), team=team_north)  # the rep's team's, nobody's own

    assert "李娜" not in _page(client_for("rep"))
    assert "李娜" in _page(client_for("rep"), scope="teams")


def test_people_of_someone_else_and_merged_away_records_are_not_listed(users, client_for, xiehe):
    _person(users["admin"], xiehe, "李娜", _born(1), owner=users["kam"])
    kept = _person(users["admin"], xiehe, "周强", _born(1), owner=users["rep"])
    gone = _person(users["admin"], xiehe, "周强强", _born(1), owner=users["rep"])
    customers.merge(users["admin"], Person.objects.get(pk=kept.pk), Person.objects.get(pk=gone.pk))

    page = _page(client_for("rep"))

    assert "李娜" not in page and "周强强" not in page and "周强" in page


def test_a_birthday_on_29_february_is_celebrated_on_the_28th_in_a_common_year():
    leap = dt.date(1992, 2, 29)

    assert falls_on(leap, dt.date(2027, 2, 20)) == dt.date(2027, 2, 28)
    assert falls_on(leap, dt.date(2028, 2, 20)) == dt.date(2028, 2, 29)
    assert falls_on(leap, dt.date(2027, 3, 1)) == dt.date(2028, 2, 29)
    assert falls_on(dt.date(1980, 1, 2), dt.date(2026, 12, 30)) == dt.date(2027, 1, 2)  # across the new year


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_every_role_opens_the_page(client_for, role, db):
    assert "No birthday among your customers in the next 7 days." in _page(client_for(role))


def test_the_page_needs_a_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_is_in_chinese_by_default(users, client_for, xiehe):
    _person(users["admin"], xiehe, "李娜", _born(0), owner=users["rep"])

    page = client_for("rep").get(URL).content.decode()

    assert "客户生日" in page and "今天" in page and "Birthdays" not in page
