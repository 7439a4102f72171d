"""Customer care on birthdays (客户关怀, seed 002 三.(三).1: "在客户生日……向客户发送祝福信息"): the people whose
birthday falls in the next days, among those the user — or the user's teams — own, so that a greeting can be sent
and recorded as an interaction.

Birthdays are encrypted at rest, so the list is made by reading the birthdays of the people owned (a rep's or a
team's customers, not the whole country) and keeping those whose month and day come up within WINDOW_DAYS. Only the
month and day are shown — what the masked form of a birthday (`****-03-15`) shows every role — so the list is no
read of clear personal data and is not audited as one. A birthday on 29 February is celebrated on 28 February in a
year that has no 29th."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from pharmacrm.core import access
from pharmacrm.customers.models import Person

WINDOW_DAYS = 7  # today and the six days after it


@dataclass
class Birthday:
    person: Person
    on: dt.date  # the day it falls on, this year or next
    in_days: int

    @property
    def month_day(self) -> str:
        return f"{self.person.birthday.month:02d}-{self.person.birthday.day:02d}"


def falls_on(birthday: dt.date, today: dt.date) -> dt.date:
    """The next day, today or later, on which the birthday is celebrated."""
    for year in (today.year, today.year + 1):
        try:
            day = birthday.replace(year=year)
        except ValueError:  # 29 February in a common year
            day = dt.date(year, 2, 28)
        if day >= today:
            return day
    raise AssertionError("unreachable: next year's day always lies ahead")


def upcoming(user, *, teams: bool = False, today: dt.date | None = None) -> list[Birthday]:
    """The birthdays within WINDOW_DAYS of the active people the user may see and owns — with `teams`, also those
    owned by a team the user belongs to — the soonest first, then by name."""
    today = today or timezone.localdate()
    owned = Q(owner=user)
    if teams:
        owned |= Q(team__in=user.teams.all())
    people = (
        access.people_for(user, Person.objects.filter(merged_into__isnull=True))
        .filter(owned)
        .select_related("institution__parent")
        .only("id", "name", "name_key", "birthday", "institution__name", "institution__kind", "institution__parent__name")
    )
    found = []
    for person in people.iterator(chunk_size=2000):
        if person.birthday is None:
            continue
        day = falls_on(person.birthday, today)
        if (day - today).days < WINDOW_DAYS:
            found.append(Birthday(person=person, on=day, in_days=(day - today).days))
    found.sort(key=lambda b: (b.on, b.person.name_key, b.person.pk))
    return found
