"""Subscribing to a report, and sending it (the worker's `send_due_reports`, every 15 minutes).

When: a monthly subscription is mailed on the 1st at 08:00 Beijing time with the month before, a quarterly one on the
first day of the quarter with the quarter before, a yearly one on 1 January with the year before. A worker that was
stopped sends, when it comes back, the latest finished period once — not a backlog of old ones.

Who and what: the workbook is the page's own export, made as the subscriber, with what they may see at that moment,
in their account's language, and mailed only to their own account address (never to an address typed in: a report
cannot be sent out of the company by a subscription). A subscriber who may no longer see the report, was deactivated
or has no address any more is not mailed: the subscription is paused with the reason, and says so on their page.

At most once: a worker takes a run by marking it "being sent" (committed) before the mail leaves; a run left in that
state (the worker killed mid-send) is not sent again by itself — it may have gone out — but is closed after
STALE with a note. A failed send (the mail server down) is tried again by the next sweeps, MAX_ATTEMPTS times in
all, then given up for that period with the reason kept. Every mail is an audited export."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import secrets

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk.performance import LOCAL, Period, current_period

from .kinds import KINDS
from .models import Frequency, ReportSubscription

log = logging.getLogger(__name__)
A = AuditEntry.Action
SEND_HOUR = 8  # Beijing time, on the first day of the period after
MAX_ATTEMPTS = 3
STALE = dt.timedelta(minutes=30)  # a run "being sent" for longer: its worker stopped mid-send


# --- when ----------------------------------------------------------------------------------------------------


def period_before(frequency: str, at: dt.datetime) -> Period:
    """The last whole month, quarter or year before `at` (Beijing days)."""
    return current_period(frequency, at).shifted(-1)


def next_run(frequency: str, after: dt.datetime) -> dt.datetime:
    """The first send time strictly after `after`: 08:00 Beijing on the first day of a month, quarter or year."""
    period = current_period(frequency, after)
    for step in (0, 1):
        at = period.shifted(step).start.astimezone(LOCAL).replace(hour=SEND_HOUR)
        if at > after:
            return at
    raise AssertionError("unreachable")


# --- subscribing -----------------------------------------------------------------------------------------------


def _snapshot(sub: ReportSubscription) -> dict:
    return {"report": sub.report, "frequency": sub.frequency, "team": sub.team_id, "active": sub.active}


def _clean(user, data: dict, current: ReportSubscription | None = None) -> dict:
    report = data.get("report", current.report if current else "")
    frequency = data.get("frequency", current.frequency if current else Frequency.MONTH)
    team = data.get("team", current.team if current else None)
    errors: dict[str, list[str]] = {}
    kind = KINDS.get(report)
    if kind is None:
        errors["report"] = [_("Choose a report from the list.")]
    elif not kind.may(user):
        errors["report"] = [_("You may not see this report, so it cannot be mailed to you.")]
    if frequency not in Frequency.values:
        errors["frequency"] = [_("Choose monthly, quarterly or yearly.")]
    if team is not None and kind is not None and "report" not in errors:
        if not kind.by_team:
            errors["team"] = [_("This report is not made per team: leave the team empty.")]
        elif not kind.teams(user).filter(pk=team.pk).exists():
            errors["team"] = [_("You may not see this team's figures.")]
    if not (user.email or "").strip():
        errors["report"] = errors.get("report", []) + [
            _("Your account has no e-mail address to mail the report to: ask an administrator to add it.")
        ]
    if errors:
        raise ValidationError(errors)
    return {"report": report, "frequency": frequency, "team": team}


def refuse_read_only(user) -> None:
    """The auditor reads reports on their pages and exports them, and changes nothing: no scheduled report is added,
    changed or mailed on request by a read-only role (stopping one is allowed: it stops mails to oneself)."""
    if access.read_only(user):
        raise PermissionDenied(_("Your role only reads: it cannot schedule reports."))


def _duplicate() -> ValidationError:
    return ValidationError({"report": [_("You already have this report mailed at this frequency (for this team).")]})


def subscribe(user, data: dict, *, now: dt.datetime | None = None) -> ReportSubscription:
    refuse_read_only(user)
    now = now or timezone.now()
    clean = _clean(user, data)
    try:
        with transaction.atomic():
            sub = ReportSubscription.objects.create(
                user=user, **clean, next_run_at=next_run(clean["frequency"], now), created_at=now, updated_at=now
            )
            audit.record(A.CREATE, sub, user=user, changes={k: [None, v] for k, v in _snapshot(sub).items()})
    except IntegrityError:  # the same subscription twice (a double click, two tabs)
        raise _duplicate() from None
    return sub


def _lock(user, sub: ReportSubscription, version: int | None) -> ReportSubscription:
    current = ReportSubscription.objects.select_for_update().filter(pk=sub.pk, user=user).first()
    if current is None:
        raise PermissionDenied(_("This is not one of your scheduled reports."))
    if version is not None and current.version != version:
        raise ConflictError(current.version)
    return current


def change(user, sub: ReportSubscription, data: dict, *, version: int | None = None,
           now: dt.datetime | None = None) -> ReportSubscription:  # fmt: skip
    """A new frequency or team, or paused / resumed ("active"). Resuming re-checks that the user may see it."""
    refuse_read_only(user)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            current = _lock(user, sub, version)
            before = _snapshot(current)
            active = bool(data.get("active", current.active))
            if active or {"frequency", "team"} & set(data):
                clean = _clean(user, data, current)
                current.frequency, current.team = clean["frequency"], clean["team"]
            if active and (not current.active or current.frequency != before["frequency"]):
                current.next_run_at = next_run(current.frequency, now)
                current.last_error = "" if not current.active else current.last_error
            current.active = active
            after = _snapshot(current)
            changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
            if not changes:
                return current
            current.version += 1
            current.updated_at = now
            current.save()
            audit.record(A.UPDATE, current, user=user, changes=changes)
    except IntegrityError:
        raise _duplicate() from None
    return current


def unsubscribe(user, sub: ReportSubscription, *, version: int | None = None) -> None:
    with transaction.atomic():
        current = _lock(user, sub, version)
        audit.record(A.DELETE, current, user=user, changes={k: [v, None] for k, v in _snapshot(current).items()})
        current.delete()


# --- sending ---------------------------------------------------------------------------------------------------


def due_ids(now: dt.datetime, limit: int = 200) -> list[int]:
    return list(
        ReportSubscription.objects.filter(active=True, next_run_at__lte=now, sending_since__isnull=True)
        .order_by("next_run_at", "id").values_list("id", flat=True)[:limit]
    )  # fmt: skip


def claim(pk: int, now: dt.datetime) -> ReportSubscription | None:
    """Take one due run: "being sent", committed before anything is mailed (None: not due, or taken)."""
    with transaction.atomic():
        taken = ReportSubscription.objects.filter(
            pk=pk, active=True, next_run_at__lte=now, sending_since__isnull=True
        ).update(sending_since=now, attempts=F("attempts") + 1)
    if not taken:
        return None
    return ReportSubscription.objects.select_related("user", "team").get(pk=pk)


def _finish(sub: ReportSubscription, now: dt.datetime, **fields) -> None:
    ReportSubscription.objects.filter(pk=sub.pk).update(sending_since=None, updated_at=now, **fields)


def _pause(sub: ReportSubscription, now: dt.datetime, reason: str) -> None:
    with transaction.atomic():
        _finish(sub, now, active=False, attempts=0, last_error=reason[:500], version=F("version") + 1)
        audit.record(A.UPDATE, sub, user=sub.user, changes={"active": [True, False]}, reason=audit.cut(reason, 200))


def _language(user) -> str:
    return getattr(user, "language", "") or settings.LANGUAGE_CODE


def _today() -> dt.date:
    """The Beijing day a workbook is counted on (a snapshot report is as of it)."""
    return timezone.localtime(timezone.now(), LOCAL).date()


def build(sub: ReportSubscription, period: Period, now: dt.datetime) -> tuple[str, bytes]:
    """(file name, workbook) as the subscriber would export it now, in their language. A snapshot report is named by
    the day it is as of, not by the period (Kind.snapshot)."""
    kind = KINDS[sub.report]
    with translation.override(_language(sub.user)):
        content = kind.build(sub.user, period, sub.team)
        label = "-".join(kind.filename().split())
    if kind.snapshot:
        return f"{label}-{_today():%Y%m%d}.xlsx", content
    stamp = timezone.localtime(now, LOCAL).strftime("%Y%m%d")
    return f"{label}-{period.key}-{stamp}.xlsx", content


def _message_id() -> str:
    """A notification's kind of Message-ID: an answer to the report ("收到") that reaches the service mailbox is
    recognised as a staff notification's, never taken in as a customer's ticket."""
    sender = getattr(settings, "NOTIFY_MAIL_FROM", "") or settings.DEFAULT_FROM_EMAIL
    domain = email.utils.parseaddr(sender)[1].rsplit("@", 1)[-1] if "@" in sender else ""
    return f"<pharmacrm-notify.0.{secrets.token_hex(8)}@{domain or 'pharmacrm.localhost'}>"


def mail(sub: ReportSubscription, period: Period, filename: str, content: bytes) -> None:
    from django.core.mail import EmailMessage, get_connection

    from pharmacrm.notify.services import _absolute

    kind = KINDS[sub.report]
    with translation.override(_language(sub.user)):
        name = kind.filename()
        values = {"report": name, "period": period.key, "date": _today().isoformat(),
                  "page": _absolute(reverse(kind.page)), "manage": _absolute(reverse("reports:subscriptions"))}  # fmt: skip
        if kind.snapshot:  # as it stands today: titled by that day, not by the period it was mailed after
            subject = _("%(report)s as of %(date)s (scheduled report)") % values
            body = _(
                "Attached: %(report)s as of %(date)s, with what your account may see. It cannot be counted as of a "
                "past day, so it is as of the day it is sent, not as of the end of %(period)s.\n\n"
                "The page: %(page)s\nYour scheduled reports (change or stop them): %(manage)s\n"
            ) % values
        else:
            subject = _("%(report)s %(period)s (scheduled report)") % values
            body = _(
                "Attached: %(report)s for %(period)s, counted on %(date)s with what your account may see.\n\n"
                "The page: %(page)s\nYour scheduled reports (change or stop them): %(manage)s\n"
            ) % values
    sender = getattr(settings, "NOTIFY_MAIL_FROM", "") or settings.DEFAULT_FROM_EMAIL
    message = EmailMessage(
        subject=subject, body=body, from_email=sender, to=[sub.user.email.strip()],
        headers={"Auto-Submitted": "auto-generated", "Message-ID": _message_id()},
    )  # fmt: skip
    message.attach(filename, content, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    with get_connection(fail_silently=False) as connection:
        connection.send_messages([message])


def _failed(sub: ReportSubscription, now: dt.datetime, error: str) -> str:
    """Not mailed: tried again by the next sweeps, MAX_ATTEMPTS in all, then given up for this period."""
    if sub.attempts >= MAX_ATTEMPTS:  # the next period comes on time
        _finish(sub, now, attempts=0, last_error=error, next_run_at=next_run(sub.frequency, now))
    else:
        _finish(sub, now, last_error=error)
    return "failed"


def run(pk: int, now: dt.datetime | None = None) -> str:
    """Send one due subscription: "sent", "failed" (tried again later), "paused", or "" (nothing to do)."""
    from pharmacrm.customers import normalise

    now = now or timezone.now()
    sub = claim(pk, now)
    if sub is None:
        return ""
    user = sub.user
    if not user.is_active:
        _pause(sub, now, _("The account was deactivated."))
        return "paused"
    if not (user.email or "").strip():
        _pause(sub, now, _("The account has no e-mail address any more."))
        return "paused"
    period = period_before(sub.frequency, now)
    try:
        if not KINDS[sub.report].may(user):
            raise PermissionDenied
        filename, content = build(sub, period, now)
    except PermissionDenied:
        _pause(sub, now, _("You may no longer see this report (or this team's figures)."))
        return "paused"
    except Exception as exc:  # noqa: BLE001 — the workbook could not be made: nothing was mailed, tried again
        log.exception("Scheduled report %s: the workbook could not be made", sub.pk)
        return _failed(sub, now, normalise.mask_addresses(f"{type(exc).__name__}: {exc}")[:500])
    try:
        mail(sub, period, filename, content)
    except Exception as exc:  # noqa: BLE001 — SMTP, network: tried again by the next sweep
        error = normalise.mask_addresses(f"{type(exc).__name__}: {exc}")[:500]
        log.warning("Scheduled report %s, attempt %d: %s", sub.pk, sub.attempts, error)
        return _failed(sub, now, error)
    with transaction.atomic():
        _finish(sub, now, attempts=0, last_error="", last_period=period.key, last_sent_at=now,
                next_run_at=next_run(sub.frequency, now))  # fmt: skip
        as_of = {"as_of": _today().isoformat()} if KINDS[sub.report].snapshot else {}  # not the period's figures
        audit.record(A.EXPORT, sub, user=user, format="XLSX", channel="mail", report=sub.report, period=period.key,
                     recipient=normalise.mask_addresses(user.email), **as_of)  # fmt: skip
    return "sent"


def close_interrupted(now: dt.datetime) -> int:
    """Runs left "being sent" by a worker that stopped: perhaps mailed, so not sent again; the next period comes."""
    closed = 0
    for sub in ReportSubscription.objects.filter(sending_since__lt=now - STALE).select_related("user"):
        with transaction.atomic():
            done = ReportSubscription.objects.filter(pk=sub.pk, sending_since=sub.sending_since).update(
                sending_since=None, attempts=0, next_run_at=next_run(sub.frequency, now), updated_at=now,
                last_error=_("The last mail was interrupted while being sent: it may have arrived; it is not sent again."),
            )  # fmt: skip
            if done:
                audit.record(A.UPDATE, sub, user=sub.user, interrupted=str(sub.sending_since))
                closed += 1
    return closed


def send_due(now: dt.datetime | None = None) -> int:
    """Every due subscription, once; returns how many mails went out."""
    now = now or timezone.now()
    close_interrupted(now)
    sent = 0
    for pk in due_ids(now):
        sent += run(pk, now) == "sent"
    return sent


@db_periodic_task(crontab(minute="*/15"))
def send_due_reports() -> int:
    return send_due()


# --- now, on request ---------------------------------------------------------------------------------------------


def send_now(user, sub: ReportSubscription, *, now: dt.datetime | None = None) -> None:
    """"Mail me the last period now": the run is made due now and sent by the worker; the schedule goes on after."""
    refuse_read_only(user)
    now = now or timezone.now()
    with transaction.atomic():
        current = _lock(user, sub, None)
        if not current.active:
            raise ValidationError({"active": [_("This scheduled report is paused: resume it first.")]})
        if current.sending_since is not None:
            raise ValidationError({"active": [_("This report is being sent right now.")]})
        ReportSubscription.objects.filter(pk=current.pk).update(next_run_at=now, attempts=0)
        transaction.on_commit(lambda: send_subscription(current.pk))


@db_task()
def send_subscription(pk: int) -> str:
    return run(pk)
