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

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
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
    since = _since(today)
    # a customer recorded since then was also updated since (the day's margin covers the microseconds between
    # the two stamps of one save): that bound is answered from the updated_at index, where tier "new" — the
    # default every imported customer keeps — would have the database read nearly every customer
    return (
        qs.filter(merged_into__isnull=True, tier=Tier.NEW, created_at__gte=since,
                  updated_at__gte=since - dt.timedelta(days=1))
        .exclude(source=Source.IMPORT)
    )  # fmt: skip


def _institution_contacted() -> Q:
    """An interaction with the institution, its departments (two levels deep, as hospitals nest) or its people —
    one EXISTS per path, each answered from an index (interaction_institution, interaction_person); a single
    EXISTS with the paths OR-ed over joined tables cannot use them and reads every interaction per customer."""
    pk = OuterRef("pk")
    paths = (
        Q(institution_id=pk), Q(institution__parent_id=pk), Q(institution__parent__parent_id=pk),
        Q(person__institution_id=pk), Q(person__department__parent_id=pk),
    )  # fmt: skip
    contacted = Q()
    for path in paths:
        contacted |= Q(Exists(Interaction.objects.filter(path)))
    return contacted


def awaiting_institutions(qs: QuerySet, today: dt.date) -> QuerySet:
    return _new(qs, today).exclude(kind=InstitutionType.DEPARTMENT).exclude(_institution_contacted())


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


REMINDER_KIND = "follow-up.due"


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def remind(today: dt.date | None = None) -> int:
    """The morning reminder (the worker's `remind_first_follow_ups`): every active owner of new customers whose
    first follow-up is due today or overdue gets one notification — bell and e-mail, in their language — saying
    how many, with a link to their list. Once a day: an owner reminded today is not reminded again (a retried or
    repeated run sends nothing twice). Customers without an owner are on the list page only. Returns how many
    owners were reminded."""
    from django.contrib.auth import get_user_model
    from django.urls import reverse
    from django.utils.translation import gettext_lazy, ngettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify
    from pharmacrm.notify.models import Notification

    today = today or timezone.localdate()
    due_before = _start_of(today - dt.timedelta(days=FIRST_FOLLOW_UP_DAYS - 1))  # recorded 3 or more days ago
    overdue_before = _start_of(today - dt.timedelta(days=FIRST_FOLLOW_UP_DAYS))
    counts: dict[int, list[int]] = {}
    for qs in (awaiting_institutions(Institution.objects.all(), today), awaiting_people(Person.objects.all(), today)):
        rows = qs.filter(owner__isnull=False, owner__is_active=True, created_at__lt=due_before)
        for owner_id, created_at in rows.values_list("owner_id", "created_at"):
            count = counts.setdefault(owner_id, [0, 0])
            count[0] += 1
            count[1] += created_at < overdue_before
    day = today.isoformat()
    reminded = set(
        Notification.objects.filter(kind=REMINDER_KIND, object_type="engagement.followup", object_id=day,
                                    recipient_id__in=counts).values_list("recipient_id", flat=True)
    )  # fmt: skip
    owners = get_user_model().objects.in_bulk([pk for pk in counts if pk not in reminded])
    url = reverse("engagement:follow-ups") + "?mine=on"
    for pk, owner in sorted(owners.items()):
        n, late = counts[pk]
        title = Message(ngettext_lazy("%(n)s new customer of yours awaits the first follow-up",
                                      "%(n)s new customers of yours await their first follow-up", n), n=n)  # fmt: skip
        body = Message(gettext_lazy("Overdue: %(late)s. A new customer is followed up within %(days)s days of being "
                                    "recorded: record the visit, call or message as an interaction."),
                       late=late, days=FIRST_FOLLOW_UP_DAYS)  # fmt: skip
        with transaction.atomic():
            notify.send([owner], kind=REMINDER_KIND, title=title, body=body, url=url, obj=("engagement.followup", day))
    if owners:  # one entry per run that reminded anyone: which owners, of how many customers
        audit.record(AuditEntry.Action.CREATE, ("notify.notification", "", str(len(owners))), actor_name="worker",
                     kind=REMINDER_KIND, owner=sorted(owners), count=sum(counts[pk][0] for pk in owners))  # fmt: skip
    return len(owners)
