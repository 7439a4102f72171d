"""The new customer's first follow-up (首次跟进, seed 000 §4.1: "对新客户,可采用首次沟通后1-3天内跟进"): a customer
recorded in the CRM — the first contact — is followed up within three days, by a visit, a call, a message …
recorded as an interaction.

A customer awaits its first follow-up when it is a new customer (tier *new*), active (not merged away), was
recorded in the last LOOK_BACK_DAYS days, did not come from an import without a source (a file of existing
customers is no first contact), and has no interaction recorded with it — by anyone: a colleague's visit counts.
A hospital's interactions include those with its departments and its people; a department is followed up
through its hospital and is never listed on its own. The follow-up is due by the end of the third day after the
day it was recorded (China time, calendar days), and overdue from the next day on. Nothing here is stored: the
state is read from the customer and its interactions, so a recorded interaction ends it at once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from pharmacrm.core import access
from pharmacrm.customers.choices import InstitutionType, Source, Tier
from pharmacrm.customers.models import Institution, Person

from .models import Interaction

FIRST_FOLLOW_UP_DAYS = 3  # the seed's "1-3 days": due by the end of the third day after the first contact
LOOK_BACK_DAYS = 30  # customers recorded earlier are a matter for regular contact, not a first follow-up
LIST_LIMIT = 200  # rows the page shows; the count above them is exact


@dataclass
class FollowUp:
    customer: Institution | Person
    recorded_on: dt.date
    due_on: dt.date
    overdue: bool


def _since(today: dt.date) -> dt.datetime:
    start = today - dt.timedelta(days=LOOK_BACK_DAYS)
    return timezone.make_aware(dt.datetime.combine(start, dt.time.min))


def _new(qs: QuerySet, today: dt.date) -> QuerySet:
    return (
        qs.filter(merged_into__isnull=True, tier=Tier.NEW, created_at__gte=_since(today))
        .exclude(source=Source.IMPORT)
    )


def _institution_contacts(pk) -> Q:
    """Interactions with the institution, its departments (two levels deep, as hospitals nest) or its people."""
    return (
        Q(institution_id=pk) | Q(institution__parent_id=pk) | Q(institution__parent__parent_id=pk)
        | Q(person__institution_id=pk) | Q(person__department__parent_id=pk)
    )  # fmt: skip


def awaiting_institutions(qs: QuerySet, today: dt.date) -> QuerySet:
    contacted = Interaction.objects.filter(_institution_contacts(OuterRef("pk")))
    return _new(qs, today).exclude(kind=InstitutionType.DEPARTMENT).exclude(Exists(contacted))


def awaiting_people(qs: QuerySet, today: dt.date) -> QuerySet:
    return _new(qs, today).exclude(Exists(Interaction.objects.filter(person_id=OuterRef("pk"))))


def _follow_up(customer, today: dt.date) -> FollowUp:
    recorded = timezone.localdate(customer.created_at)
    due = recorded + dt.timedelta(days=FIRST_FOLLOW_UP_DAYS)
    return FollowUp(customer=customer, recorded_on=recorded, due_on=due, overdue=today > due)


def pending(customer) -> FollowUp | None:
    """The customer's first follow-up while it is awaited (for its Customer 360 page), else None."""
    today = timezone.localdate()
    if isinstance(customer, Institution):
        found = awaiting_institutions(Institution.objects.filter(pk=customer.pk), today).exists()
    else:
        found = awaiting_people(Person.objects.filter(pk=customer.pk), today).exists()
    return _follow_up(customer, today) if found else None


def awaiting_for(user, *, mine: bool = False) -> tuple[list[FollowUp], int]:
    """The customers the user may see that await their first follow-up, the longest waiting first (at most
    LIST_LIMIT), and how many there are. `mine`: only those the user owns."""
    today = timezone.localdate()
    institutions = awaiting_institutions(access.institutions_for(user, Institution.objects.all()), today)
    people = awaiting_people(access.people_for(user, Person.objects.all()), today)
    if mine:
        institutions, people = institutions.filter(owner=user), people.filter(owner=user)
    total = institutions.count() + people.count()
    rows = [
        *institutions.select_related("parent", "owner").order_by("created_at", "id")[:LIST_LIMIT],
        *people.select_related("institution", "owner").order_by("created_at", "id")[:LIST_LIMIT],
    ]
    rows.sort(key=lambda c: (c.created_at, isinstance(c, Person), c.pk))
    return [_follow_up(c, today) for c in rows[:LIST_LIMIT]], total
