"""Customer care on birthdays and festivals (客户关怀, seed 002 三.(三).1: "在客户生日、节假日等特殊时期，向客户发送
祝福信息"): the people whose birthday falls in the next days, among those the user — or the user's teams — own, and
the festivals of the next two weeks with how many customers to greet, so that a greeting can be sent and recorded as
an interaction; owners are reminded of a festival three days ahead.

Birthdays are encrypted at rest, so the list is made by reading the birthdays of the people owned (a rep's or a
team's customers, not the whole country) and keeping those whose month and day come up within WINDOW_DAYS. Only the
month and day are shown — what the masked form of a birthday (`****-03-15`) shows every role — so the list is no
read of clear personal data and is not audited as one. A birthday on 29 February is celebrated on 28 February in a
year that has no 29th."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import pgettext_lazy

from pharmacrm.core import access
from pharmacrm.customers.choices import PersonRole
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


# --- festivals (节日问候) ---------------------------------------------------------------------------------------

FESTIVAL_DAYS = 14  # the festivals of today and the next 13 days are listed: time to plan the greetings
FESTIVAL_NOTICE_DAYS = 3  # owners are reminded of a festival from three days before it
FESTIVAL_REMINDER_KIND = "care.festival"

# The public festivals a company greets its customers on, by their name in the `holidays` package's China list
# (zh_CN), which works out the lunar dates for any year; the first day of each. Not Qingming (清明, a day of
# mourning: no greetings), nor the days given in lieu.
GREETED = {
    "元旦": pgettext_lazy("festival", "New Year's Day"),
    "春节": pgettext_lazy("festival", "Spring Festival"),
    "劳动节": pgettext_lazy("festival", "Labour Day"),
    "端午节": pgettext_lazy("festival", "Dragon Boat Festival"),
    "中秋节": pgettext_lazy("festival", "Mid-Autumn Festival"),
    "国庆节": pgettext_lazy("festival", "National Day"),
}
# The professional days of the people the company serves (fixed dates), greeted among those of the role only.
PROFESSIONAL_DAYS = (
    ("nurses", 5, 12, PersonRole.NURSE, pgettext_lazy("festival", "International Nurses Day")),
    ("doctors", 8, 19, PersonRole.DOCTOR, pgettext_lazy("festival", "Chinese Doctors' Day")),
)


@dataclass
class Festival:
    key: str  # the day and the festival: what a reminder is sent once for
    name: object  # a lazy, translatable name
    on: dt.date
    in_days: int
    role: str = ""  # the people it is for: a PersonRole, or "" for every customer
    people: int = 0  # how many of them the user (or their teams) own, filled by `festivals_for`

    @property
    def role_label(self) -> str:
        return str(PersonRole(self.role).label) if self.role else ""


@lru_cache(maxsize=16)
def _public_days(year: int) -> tuple[tuple[dt.date, str], ...]:
    import holidays

    return tuple(sorted(holidays.China(years=year, language="zh_CN").items()))


def festivals(today: dt.date | None = None, days: int = FESTIVAL_DAYS) -> list[Festival]:
    """The festivals greeted falling today or within the next `days` - 1 days, the soonest first."""
    today = today or timezone.localdate()
    found = []
    for year in (today.year, today.year + 1):
        first: dict[str, dt.date] = {}
        for day, names in _public_days(year):
            # two festivals on one day are named together ("中秋节; 国庆节": 3 October 2028, 1 October 2031)
            for name in names.split("; "):
                if name in GREETED and name not in first:
                    first[name] = day
        found += [Festival(f"{day.isoformat()}:{name}", GREETED[name], day, (day - today).days)
                  for name, day in first.items()]  # fmt: skip
        for code, month, mday, role, label in PROFESSIONAL_DAYS:
            day = dt.date(year, month, mday)
            found.append(Festival(f"{day.isoformat()}:{code}", label, day, (day - today).days, role))
    return sorted((f for f in found if 0 <= f.in_days < days), key=lambda f: (f.on, f.key))


def _audience(festival: Festival):
    people = Person.objects.filter(merged_into__isnull=True)
    return people.filter(role=festival.role) if festival.role else people


def festivals_for(user, *, teams: bool = False, today: dt.date | None = None) -> list[Festival]:
    """The coming festivals, each with how many of its people the user — with `teams`, also the user's teams — own
    and may see: one count per festival (two at most in a fortnight, as a rule)."""
    owned = Q(owner=user)
    if teams:
        owned |= Q(team__in=user.teams.all())
    found = festivals(today)
    for f in found:
        f.people = access.people_for(user, _audience(f)).filter(owned).count()
    return found


def remind_festivals(today: dt.date | None = None) -> int:
    """The morning reminder (the worker's `remind_festivals`): from FESTIVAL_NOTICE_DAYS days before a festival, every
    active owner of people it is for gets one notification — bell and e-mail, in their language — naming the festival,
    its day and how many of their customers to greet, with a link to the care page. Once per festival and owner: a
    repeated run, or a worker killed mid-run and run again, reminds nobody twice. Returns how many notifications were
    sent."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.urls import reverse
    from django.utils.translation import gettext_lazy

    from pharmacrm.core import audit
    from pharmacrm.core.deferred import Message
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.notify import services as notify
    from pharmacrm.notify.models import Notification

    today = today or timezone.localdate()
    sent, owners_told = 0, set()
    for f in festivals(today, days=FESTIVAL_NOTICE_DAYS + 1):
        counts = dict(
            _audience(f).filter(owner__isnull=False, owner__is_active=True)
            .order_by().values("owner_id").annotate(n=Count("id")).values_list("owner_id", "n")
        )  # fmt: skip
        reminded = set(
            Notification.objects.filter(kind=FESTIVAL_REMINDER_KIND, object_type="engagement.festival",
                                        object_id=f.key, recipient_id__in=counts).values_list("recipient_id", flat=True)
        )  # fmt: skip
        owners = get_user_model().objects.in_bulk([pk for pk in counts if pk not in reminded])
        for pk, owner in sorted(owners.items()):
            n = counts[pk]
            title = Message(gettext_lazy("%(festival)s on %(day)s: time to greet your customers"),
                            festival=f.name, day=f.on.isoformat())  # fmt: skip
            if f.role:
                body = Message(gettext_lazy("People you own of the role %(role)s: %(n)s. Send them your good wishes and "
                                            "record each greeting as an interaction."),
                               n=n, role=PersonRole(f.role).label)  # fmt: skip
            else:
                body = Message(gettext_lazy("Customer contacts you own: %(n)s. Send them your good wishes and record "
                                            "each greeting as an interaction."), n=n)  # fmt: skip
            with transaction.atomic():
                notify.send([owner], kind=FESTIVAL_REMINDER_KIND, title=title, body=body,
                            url=reverse("engagement:birthdays"), obj=("engagement.festival", f.key))  # fmt: skip
            sent += 1
            owners_told.add(pk)
        if owners:
            audit.record(AuditEntry.Action.CREATE, ("notify.notification", "", str(len(owners))), actor_name="worker",
                         kind=FESTIVAL_REMINDER_KIND, festival=f.key, owner=sorted(owners),
                         count=sum(counts[pk] for pk in owners))  # fmt: skip
    return sent
