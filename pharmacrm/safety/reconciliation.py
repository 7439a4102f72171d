"""The reconciliation report of the net: every flagged or safety-relevant ticket and every flagged interaction
of a period, against the cases opened from them and whether those cases were reported on time, with what
needs action listed first. Used by the page, its XLSX export and the API.

Plain dicts out, no patient data in them (no texts, no names): the overseeing roles and the export see it.
A bounded number of queries whatever the number of tickets: each table is read once for the whole period."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .choices import AckStatus, CaseKind, CaseStatus, ClockKind, SignalStatus
from .models import Flag, SafetyCase, SafetyClock, Submission

DEFAULT_DAYS = 90
DAY = dt.timedelta(days=1)

# how a case stands against its reporting deadlines
ON_TIME, LATE, NOT_YET, OVERDUE, NOT_REPORTABLE, CLOSED_UNREPORTED, NULLIFIED = (
    "on_time", "late", "not_yet", "overdue", "not_reportable", "closed_unreported", "nullified",
)  # fmt: skip
TIMELINESS = {
    # a report sent by its deadline (按时), not a ticket's clock still within its time (正常), the bare "On time"
    ON_TIME: pgettext_lazy("report timeliness", "On time"),
    LATE: _("Late"),
    NOT_YET: _("Not yet reported"),
    OVERDUE: _("Overdue, not reported"),
    NOT_REPORTABLE: _("Not reportable"),
    CLOSED_UNREPORTED: _("Closed without a report"),
    NULLIFIED: _("Nullified: no report owed"),
}
NO_FLAG = "none"  # a safety-relevant record the net never flagged
FLAG_STATUS = {**dict(SignalStatus.choices), NO_FLAG: _("Never flagged")}

# what needs action
NO_DECISION, NEVER_FLAGGED, CASE_OVERDUE, INVESTIGATION_OVERDUE, LATE_NO_REASON, REJECTED_OPEN = (
    "no_decision", "never_flagged", "case_overdue", "investigation_overdue", "late_no_reason", "rejected_open",
)  # fmt: skip
PROBLEMS = {
    NEVER_FLAGGED: _("Safety-relevant, never reached triage, no case"),
    NO_DECISION: _("Awaiting triage, no case yet"),
    CASE_OVERDUE: _("Case overdue: the report is not submitted"),
    INVESTIGATION_OVERDUE: _("Death investigation report overdue"),
    LATE_NO_REASON: _("Reported late without a reason"),
    REJECTED_OPEN: _("Report rejected by the regulator, not resubmitted"),
}


def default_period(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The last 90 days, today included."""
    today = today or timezone.localdate()
    return today - dt.timedelta(days=DEFAULT_DAYS - 1), today


def bounds(since: dt.date | dt.datetime, until: dt.date | dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in aware datetimes: dates are whole local days, `until` included."""
    if not isinstance(since, dt.datetime):
        since = timezone.make_aware(dt.datetime.combine(since, dt.time.min))
    if not isinstance(until, dt.datetime):
        until = timezone.make_aware(dt.datetime.combine(until + DAY, dt.time.min))
    return since, until


def _late_days(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta / DAY))


def _timeliness(clocks: list[dict], submissions: list[dict], now: dt.datetime) -> tuple[str, int]:
    """(state, days late or overdue) of a case from its report clocks and submissions."""
    if not clocks:
        return NOT_REPORTABLE, 0
    open_clocks = [c for c in clocks if c["met_at"] is None and c.get("stopped_at") is None]
    if open_clocks:
        due = min(c["due_at"] for c in open_clocks)
        return (OVERDUE, _late_days(now - due)) if due < now else (NOT_YET, 0)
    sent = [s for s in submissions if s["ack_status"] != AckStatus.REJECTED] or submissions
    if not sent:
        return CLOSED_UNREPORTED, 0
    late = [s["delay_days"] for s in sent if s["late"]]
    return (LATE, max(late)) if late else (ON_TIME, 0)


def _working_hours(engine, start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None or engine is None:
        return None
    return round(engine.between(start, end) / dt.timedelta(hours=1), 1)


def _business_calendar():
    from pharmacrm.servicedesk import calendars
    from pharmacrm.servicedesk.models import BusinessCalendar

    try:
        return calendars.engine("business")
    except BusinessCalendar.DoesNotExist:
        return None


def _sources(start: dt.datetime, end: dt.datetime):
    """The tickets and interactions received in the period that are safety-relevant or were ever flagged, and
    the older ones a flag of the period was raised on: a reaction first told in a later e-mail on an old ticket
    has that e-mail as day 0, and belongs to the period it was heard in."""
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.servicedesk.models import Ticket

    heard = Q(received_at__gte=start, received_at__lt=end)
    tickets = Ticket.objects.filter(
        (heard & (Q(safety_relevant=True) | Exists(Flag.objects.filter(ticket=OuterRef("pk")))))
        | Exists(Flag.objects.filter(heard, ticket=OuterRef("pk")))
    )
    interactions = Interaction.objects.filter(
        (heard & (Q(safety_relevant=True) | Exists(Flag.objects.filter(interaction=OuterRef("pk")))))
        | Exists(Flag.objects.filter(heard, interaction=OuterRef("pk")))
    )
    return tickets, interactions


def report(
    since: dt.date | dt.datetime, until: dt.date | dt.datetime, *, now: dt.datetime | None = None
) -> dict:
    """{"since", "until", "rows", "unmatched", "totals"} for the period (see rows() and unmatched())."""
    now = now or timezone.now()
    start, end = bounds(since, until)
    tickets, interactions = _sources(start, end)
    ticket_ids, interaction_ids = tickets.values("id"), interactions.values("id")

    sources = [
        {"source_type": "ticket", "source_id": t["id"], "source": t["number"], "received_at": t["received_at"],
         "safety_relevant": t["safety_relevant"]}
        for t in tickets.values("id", "number", "received_at", "safety_relevant")
    ] + [
        {"source_type": "interaction", "source_id": i["id"], "source": str(_("Interaction %(id)s") % {"id": i["id"]}),
         "received_at": i["received_at"], "safety_relevant": i["safety_relevant"]}
        for i in interactions.values("id", "received_at", "safety_relevant")
    ]  # fmt: skip
    flag_qs = Flag.objects.filter(Q(ticket_id__in=ticket_ids) | Q(interaction_id__in=interaction_ids))
    flags = list(
        flag_qs.order_by("created_at", "id").values(
            "id",
            "ticket_id",
            "interaction_id",
            "status",
            "kind",
            "by_agent",
            "created_at",
            "decided_at",
            "case_id",
            "received_at",
        )
    )
    heard_in_period: dict[tuple, dt.datetime] = {}
    for f in flags:
        if start <= f["received_at"] < end:
            key = ("ticket", f["ticket_id"]) if f["ticket_id"] else ("interaction", f["interaction_id"])
            heard_in_period[key] = min(heard_in_period.get(key, f["received_at"]), f["received_at"])
    for source in sources:  # an older record is in the period for what was heard then: that is its date here
        if source["received_at"] < start:
            source["received_at"] = heard_in_period.get((source["source_type"], source["source_id"]), start)
    sources.sort(key=lambda s: (s["received_at"], s["source_type"], s["source_id"]))
    handoff = {
        c["flag_id"]: c
        for c in SafetyClock.objects.filter(kind=ClockKind.HANDOFF, flag_id__in=flag_qs.values("id")).values(
            "flag_id", "due_at", "met_at", "breached_at", "calendar_id"
        )
    }
    # a pending hand-off counted into a year whose holidays are not entered yet: its deadline may move
    from .services import provisional_years

    provisional = provisional_years(((k, c["calendar_id"], c["due_at"], c["met_at"]) for k, c in handoff.items()), now)
    case_qs = SafetyCase.objects.filter(
        Q(source_ticket_id__in=ticket_ids) | Q(source_interaction_id__in=interaction_ids)
    )
    cases = list(
        case_qs.order_by("received_at", "id").values(
            "id", "number", "kind", "status", "valid", "source_ticket_id", "source_interaction_id"
        )
    )
    clocks = defaultdict(list)
    for c in SafetyClock.objects.filter(kind=ClockKind.REPORT, case_id__in=case_qs.values("id")).values(
        "case_id", "due_at", "met_at", "stopped_at"
    ):
        clocks[c["case_id"]].append(c)
    submissions = defaultdict(list)
    for s in Submission.objects.filter(kind=ClockKind.REPORT, case_id__in=case_qs.values("id")).values(
        "case_id", "submitted_at", "late", "delay_days", "ack_status"
    ):
        submissions[s["case_id"]].append(s)
    # the 15-day death investigation report is owed like the report itself
    investigations = defaultdict(list)
    for c in SafetyClock.objects.filter(
        kind=ClockKind.INVESTIGATION, case_id__in=case_qs.values("id"), met_at__isnull=True, stopped_at__isnull=True,
        due_at__lt=now,
    ).values("case_id", "due_at"):  # fmt: skip
        investigations[c["case_id"]].append(c["due_at"])
    engine = _business_calendar()

    flags_of, cases_of = defaultdict(list), defaultdict(list)
    for f in flags:
        key = ("ticket", f["ticket_id"]) if f["ticket_id"] else ("interaction", f["interaction_id"])
        flags_of[key].append(f)
    for c in cases:
        key = (
            ("ticket", c["source_ticket_id"])
            if c["source_ticket_id"]
            else ("interaction", c["source_interaction_id"])
        )
        cases_of[key].append(c)

    rows: list[dict] = []
    for source in sources:
        key = (source["source_type"], source["source_id"])
        its_flags = flags_of[key]
        statuses = {f["status"] for f in its_flags}
        if SignalStatus.CONFIRMED in statuses:
            flag_status = SignalStatus.CONFIRMED.value
        elif SignalStatus.PENDING in statuses:
            flag_status = SignalStatus.PENDING.value
        elif statuses:
            flag_status = SignalStatus.DISMISSED.value
        else:
            flag_status = NO_FLAG
        # the flag of what was heard in the period: a ticket whose flag was dismissed months ago and that is flagged
        # again for a death told in an e-mail of this period is here for that hand-off, not the old one
        first = next((f for f in its_flags if start <= f["received_at"] < end), its_flags[0] if its_flags else None)
        clock = handoff.get(first["id"]) if first else None
        handoff_facts = {
            "flag_kind": first["kind"] if first else "",
            "flagged_by_staff": first["by_agent"] if first else None,
            "flagged_at": first["created_at"] if first else None,
            "triaged_at": first["decided_at"] if first else None,
            # from when the company heard it, as the hand-off clock runs — not from when the flag was raised (a visit
            # written up two days later was "0.5 working h" and late at once)
            "handoff_working_hours": _working_hours(engine, first and first["received_at"], first and first["decided_at"]),
            "handoff_due": clock["due_at"] if clock else None,
            "handoff_due_provisional": list(provisional.get(first["id"], ())) if clock else [],
            "handoff_on_time": (None if clock is None or (clock["met_at"] is None and clock["due_at"] > now)
                                else clock["met_at"] is not None and clock["met_at"] <= clock["due_at"]),
        }  # fmt: skip
        base = {**source, "flag_status": flag_status, **handoff_facts}
        its_cases = cases_of[key]
        if not its_cases:
            rows.append({**base, **dict.fromkeys(CASE_KEYS), "timeliness": "", "late_days": 0})
            continue
        for case in its_cases:
            case_clocks = clocks[case["id"]]
            state, days = _timeliness(case_clocks, submissions[case["id"]], now)
            if (state == NOT_REPORTABLE and not case["valid"] and case["kind"] != CaseKind.QUALITY
                    and case["status"] not in (CaseStatus.CLOSED, CaseStatus.NULLIFIED)):
                state = NOT_YET  # no clock before the minimum criteria are met (no day 0): reported once they are
            if state == CLOSED_UNREPORTED and case["status"] == CaseStatus.NULLIFIED:
                state = NULLIFIED  # void (a duplicate, sent in error): nothing owed — not a report dropped
            dues = [c["due_at"] for c in case_clocks if c["met_at"] is None] or [
                c["due_at"] for c in case_clocks
            ]
            sent = [s["submitted_at"] for s in submissions[case["id"]]]
            rows.append({
                **base, "case_id": case["id"], "case_number": case["number"], "case_kind": case["kind"],
                "case_status": case["status"], "case_valid": case["valid"],
                "report_due": min(dues) if dues else None,
                "submitted_at": min(sent) if sent else None, "timeliness": state, "late_days": days,
            })  # fmt: skip
    problems = _unmatched(rows, start, end)
    for row in rows:
        for due in investigations.get(row["case_id"], ()):
            problems.append(_problem(INVESTIGATION_OVERDUE, row, at=row["received_at"], due=due,
                                     days=_late_days(now - due)))  # fmt: skip
    return {
        "since": start,
        "until": end,
        "rows": rows,
        "unmatched": problems,
        "totals": _totals(rows, problems),
    }


CASE_KEYS = ("case_id", "case_number", "case_kind", "case_status", "case_valid", "report_due", "submitted_at")


def _unmatched(rows: list[dict], start: dt.datetime, end: dt.datetime) -> list[dict]:
    problems: list[dict] = []
    for row in rows:
        if row["case_id"] is None and row["flag_status"] in (SignalStatus.PENDING, NO_FLAG):
            code = NEVER_FLAGGED if row["flag_status"] == NO_FLAG else NO_DECISION
            problems.append(_problem(code, row, at=row["received_at"], due=row["handoff_due"],
                                     due_provisional=row["handoff_due_provisional"]))  # fmt: skip
        elif row["timeliness"] == OVERDUE:
            problems.append(_problem(CASE_OVERDUE, row, at=row["received_at"], due=row["report_due"],
                                     days=row["late_days"]))  # fmt: skip
    later = Submission.objects.filter(
        case=OuterRef("case"), kind=OuterRef("kind"), jurisdiction=OuterRef("jurisdiction"),
        submitted_at__gt=OuterRef("submitted_at"),
    )  # fmt: skip
    for s in (
        Submission.objects.filter(case__received_at__gte=start, case__received_at__lt=end)
        .filter(Q(late=True, late_reason="") | Q(ack_status=AckStatus.REJECTED))
        .annotate(resubmitted=Exists(later))
        .order_by("submitted_at", "id")
        .values("id", "case_id", "case__number", "case__status", "case__received_at", "submitted_at", "late",
                "late_reason", "delay_days", "ack_status", "resubmitted", "jurisdiction")
    ):  # fmt: skip
        row = {"source_type": "", "source_id": None, "source": "", "case_id": s["case_id"],
               "case_number": s["case__number"]}  # fmt: skip
        if s["late"] and not s["late_reason"]:
            problems.append(_problem(LATE_NO_REASON, row, at=s["submitted_at"], days=s["delay_days"],
                                     jurisdiction=s["jurisdiction"]))  # fmt: skip
        closed = s["case__status"] in (CaseStatus.CLOSED, CaseStatus.NULLIFIED)
        if s["ack_status"] == AckStatus.REJECTED and not s["resubmitted"] and not closed:
            problems.append(
                _problem(REJECTED_OPEN, row, at=s["submitted_at"], jurisdiction=s["jurisdiction"])
            )
    return problems


def _problem(code: str, row: dict, *, at, due=None, days: int = 0, jurisdiction: str = "",
             due_provisional: list[int] | None = None) -> dict:  # fmt: skip
    return {
        "problem": code, "label": str(PROBLEMS[code]), "source_type": row["source_type"],
        "source_id": row["source_id"], "source": row["source"], "case_id": row["case_id"],
        "case_number": row["case_number"], "at": at, "due": due, "days": days, "jurisdiction": jurisdiction,
        "due_provisional": due_provisional or [],
    }  # fmt: skip


def _totals(rows: list[dict], problems: list[dict]) -> dict:
    seen: dict[tuple, dict] = {}
    for row in rows:
        seen.setdefault((row["source_type"], row["source_id"]), row)
    sources = list(seen.values())
    case_rows = [r for r in rows if r["case_id"] is not None]
    totals = {
        "sources": len(sources),
        "tickets": sum(1 for s in sources if s["source_type"] == "ticket"),
        "interactions": sum(1 for s in sources if s["source_type"] == "interaction"),
        "handoff_on_time": sum(1 for s in sources if s["handoff_on_time"] is True),
        "handoff_late": sum(1 for s in sources if s["handoff_on_time"] is False),
        "cases": len(case_rows),
        "valid_cases": sum(1 for r in case_rows if r["case_valid"]),
        "unmatched": len(problems),
    }
    for status in (*SignalStatus.values, NO_FLAG):
        totals[f"flag_{status}"] = sum(1 for s in sources if s["flag_status"] == status)
    for state in TIMELINESS:
        totals[state] = sum(1 for r in case_rows if r["timeliness"] == state)
    return totals


def rows(since: dt.date | dt.datetime, until: dt.date | dt.datetime) -> list[dict]:
    """One row per source and case (a source without a case: one row with empty case fields)."""
    return report(since, until)["rows"]


def unmatched(since: dt.date | dt.datetime, until: dt.date | dt.datetime) -> list[dict]:
    """What needs action: sources without a decision or case, overdue cases, late reports without a reason,
    rejected reports not sent again."""
    return report(since, until)["unmatched"]
