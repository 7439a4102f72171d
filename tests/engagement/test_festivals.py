"""Customer care on festivals (seed 002 三.(三).1 "在客户生日、节假日等特殊时期，向客户发送祝福信息"): the care page
(/interactions/birthdays/) lists the festivals of the next two weeks — the public festivals a company greets its
customers on, whose lunar dates the `holidays` package works out for any year, and the professional days of doctors
and nurses — with how many of the people the user owns they are for; from three days before, the worker reminds each
owner once per festival."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Person
from pharmacrm.engagement import care, tasks
from pharmacrm.notify.models import Notification

from ..conftest import new_user

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
URL = "/interactions/birthdays/"


def _names(today: dt.date) -> list[tuple[str, str, int]]:
    with translation.override("en"):
        return [(str(f.name), f.on.isoformat(), f.in_days) for f in care.festivals(today)]


def test_the_festivals_of_the_next_two_weeks_with_their_lunar_dates():
    assert _names(dt.date(2027, 9, 5)) == [("Mid-Autumn Festival", "2027-09-15", 10)]
    # the Spring Festival's first day, not New Year's Eve before it nor the days given in lieu after it
    assert _names(dt.date(2027, 1, 25)) == [("Spring Festival", "2027-02-06", 12)]
    assert _names(dt.date(2026, 9, 20)) == [("Mid-Autumn Festival", "2026-09-25", 5), ("National Day", "2026-10-01", 11)]
    assert _names(dt.date(2026, 12, 25)) == [("New Year's Day", "2027-01-01", 7)]  # across the year's end
    assert _names(dt.date(2026, 6, 19)) == [("Dragon Boat Festival", "2026-06-19", 0)]  # today
    assert _names(dt.date(2026, 6, 20)) == []  # the day after: gone


def test_mid_autumn_on_a_day_of_the_national_day_holiday_is_greeted_too():
    # 3 October 2028 is both (the `holidays` package names the day "中秋节; 国庆节"): neither was listed
    assert _names(dt.date(2028, 9, 28)) == [("National Day", "2028-10-01", 3), ("Mid-Autumn Festival", "2028-10-03", 5)]
    assert [n for n, _on, _d in _names(dt.date(2031, 9, 25))] == ["Mid-Autumn Festival", "National Day"]  # 1 October 2031


def test_qingming_a_day_of_mourning_is_never_a_greeting():
    assert _names(dt.date(2027, 3, 30)) == []  # Qingming falls on 5 April 2027


def test_doctors_and_nurses_days_are_for_the_people_of_that_role():
    [nurses] = care.festivals(dt.date(2026, 5, 1))[1:]  # Labour Day first
    [doctors] = care.festivals(dt.date(2026, 8, 10))
    assert (nurses.on, nurses.role) == (dt.date(2026, 5, 12), "nurse")
    assert (doctors.on, doctors.role, doctors.in_days) == (dt.date(2026, 8, 19), "doctor", 9)


@pytest.fixture
def on_day(monkeypatch):
    """The care page as if opened on `day`."""

    def fix(day: dt.date) -> None:
        real = care.festivals
        monkeypatch.setattr(care, "festivals", lambda today=None, days=care.FESTIVAL_DAYS: real(day, days))

    return fix


@pytest.fixture
def doctors(users, xiehe):
    """The rep owns two doctors and a nurse of 协和; the kam one doctor; a merged-away doctor counts for nobody."""
    admin = users["admin"]
    made = [
        customers.create_person(admin, {"name": name, "institution": xiehe, "role": role, "owner": users[owner]})
        for name, role, owner in (("李娜", "doctor", "rep"), ("王芳", "doctor", "rep"), ("赵敏", "nurse", "rep"),
                                  ("钱军", "doctor", "kam"))
    ]  # fmt: skip
    gone = customers.create_person(admin, {"name": "孙丽", "institution": xiehe, "role": "doctor", "owner": users["rep"]})
    Person.objects.filter(pk=gone.pk).update(merged_into=made[0])
    return made


def test_the_care_page_says_which_festival_is_coming_and_whom_to_greet(client_for, users, doctors, on_day):
    on_day(dt.date(2026, 8, 10))

    page = client_for("rep").get(URL, **EN).content.decode()

    entry = page.split('class="festival"')[1].split("</li>")[0]
    assert "Chinese Doctors&#x27; Day" in entry and "2026-08-19" in entry and "In 9 days" in entry
    assert "2 people to greet (Doctor)" in entry  # not the nurse, not the merged-away record, not the kam's
    assert f"/customers/people/?owner={users['rep'].pk}&amp;role=doctor" in entry
    zh = client_for("rep").get(URL).content.decode()
    assert "生日与节日关怀" in zh and "中国医师节" in zh and "需问候 2 人（医生）" in zh


def test_a_public_festival_is_for_every_customer_the_user_owns(client_for, users, doctors, on_day):
    on_day(dt.date(2026, 9, 20))

    page = client_for("rep").get(URL, **EN).content.decode()

    [mid_autumn, national] = [e.split("</li>")[0] for e in page.split('class="festival"')[1:]]
    assert "Mid-Autumn Festival" in mid_autumn and "3 people to greet" in mid_autumn and "(" not in mid_autumn
    assert "National Day" in national and "In 11 days" in national


def test_no_festival_ahead_says_so(client_for, users, on_day):
    on_day(dt.date(2026, 7, 1))
    assert "No festival today or in the next 13 days." in client_for("rep").get(URL, **EN).content.decode()


def _told(user) -> list[Notification]:
    return list(Notification.objects.filter(kind=care.FESTIVAL_REMINDER_KIND, recipient=user).order_by("id"))


def test_owners_are_reminded_three_days_before_once_per_festival(client_for, users, doctors):
    nobody = new_user("departed", Role.REP)
    customers.create_person(users["admin"], {"name": "周杰", "institution": doctors[0].institution, "role": "doctor",
                                             "owner": nobody})  # fmt: skip
    nobody.is_active = False
    nobody.save()

    assert care.remind_festivals(dt.date(2026, 8, 15)) == 0  # four days before Doctors' Day: not yet
    assert care.remind_festivals(dt.date(2026, 8, 16)) == 2  # the rep and the kam; not the departed rep
    assert care.remind_festivals(dt.date(2026, 8, 17)) == 0  # the next morning: nothing twice
    assert care.remind_festivals(dt.date(2026, 8, 19)) == 0

    [note] = _told(users["rep"])
    assert note.url == URL and len(_told(users["kam"])) == 1 and not _told(nobody)
    page = client_for("rep").get("/notifications/", **EN).content.decode()
    assert "Chinese Doctors&#x27; Day on 2026-08-19: time to greet your customers" in page
    assert "People you own of the role Doctor: 2." in page
    zh = client_for("rep").get("/notifications/").content.decode()
    assert "中国医师节（2026-08-19）" in zh
    entry = AuditEntry.objects.filter(actor_name="worker", object_type="notify.notification").latest("seq")
    assert entry.extra["kind"] == "care.festival" and entry.extra["festival"] == "2026-08-19:doctors"
    assert sorted(entry.extra["owner"]) == sorted([users["rep"].pk, users["kam"].pk]) and entry.extra["count"] == 3


def test_a_worker_killed_mid_run_reminds_the_others_only_once(users, doctors):
    from pharmacrm.notify import services as notify

    notify.send([users["rep"]], kind=care.FESTIVAL_REMINDER_KIND, title="x",
                obj=("engagement.festival", "2026-08-19:doctors"))  # fmt: skip

    assert care.remind_festivals(dt.date(2026, 8, 17)) == 1  # the kam only: the rep was told before the worker died
    assert len(_told(users["rep"])) == 1 and len(_told(users["kam"])) == 1


def test_the_worker_runs_the_reminder_every_morning(users, doctors, monkeypatch):
    monkeypatch.setattr(care.timezone, "localdate", lambda: dt.date(2026, 9, 23))  # Mid-Autumn on the 25th
    tasks.remind_festivals.call_local()
    assert len(_told(users["rep"])) == 1 and len(_told(users["kam"])) == 1
