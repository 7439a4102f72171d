"""Changing the term of a signed agreement by an amendment (补充协议 / 协议期限变更), one implementation for the key-account
service agreements (keyaccounts) and the cooperation agreements (cooperation): the amendment's record, its checks, how
it is written (the agreement's term becomes the amendment's, under the agreement's version, audited), the signed term
the agreement's own document keeps, and the amendment's bilingual PDF. Each app says what differs with a `Terms`
(keyaccounts.services.SERVICE_TERMS, cooperation.services.COOPERATION_TERMS): who may, which statuses may be amended,
its own rules for a term, how it locks, what follows the end (the renewal reminder), where files are kept and how its
parties read on a contract. docs/keyaccounts.md and docs/cooperation.md.

An agreement's `start_date` and `end_date` are always its term in force today — the latest amendment that has taken
effect — so that the reminders, the expiry, the renewals and the lists follow it without knowing of amendments; the
term as signed is the first amendment's `previous_start`/`previous_end` (`signed_term`). An amendment signed ahead of
its effective date (signed on 12-01, in effect from 2027-01-01) is recorded at once but applied on its day
(`applied_at` empty until then: `pending`): the worker's daily sweep of each app applies what has come due before it
reminds or expires anything (`apply_due`), so the stored term stays the term in force and one function says what the
term is on any day (`term_on`). One pending amendment at a time: another is refused until it has taken effect.

A pending amendment lapses (`lapse`: `lapsed_at`, `lapse_cause`, `lapsed_by`) when the agreement goes out of force
before its day — terminated, ended on de-listing, or renewed by a new agreement whose term overlaps the one the
amendment sets (a signed renewal supersedes it): it is never applied, the pages and the API say why, and the change is
audited, in the transaction of the termination or the renewal. An amendment whose day has come by then took effect
already, and is applied first. Until its day the renewal reminder follows the end the agreement will have once the
pending amendment applies (`reminded_end`), not the end it has now."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from . import audit, uploads
from .models import AuditEntry

A = AuditEntry.Action
REASON_MAX = 2000
STATES = ["applied", "waiting", "lapsed"]  # an amendment's state in the API (`state`)
STATE_HELP = ("applied: the agreement's term became this one; waiting: its effective date is ahead; lapsed: never "
              "applied, the agreement went out of force before its effective date (terminated, ended, renewed).")
LAPSED_REASON_HELP = "Why it lapsed, in the reader's language (terminated on …, renewed by …); empty unless it did."


class LapseCause(models.TextChoices):
    """Why a pending amendment was never applied: the agreement went out of force before its effective date."""

    TERMINATED = "terminated", gettext_lazy("the agreement was terminated")
    RENEWED = "renewed", gettext_lazy("the agreement was renewed")
    ENDED = "ended", gettext_lazy("the agreement ended on de-listing")


class TermAmendment(models.Model):
    """An amendment of an agreement's term (补充协议): the term before and after, why, from when, who recorded it, and
    the signed copy when there is one. Written once, never changed; numbered per agreement (AG-2026-0001-A1). The
    concrete model adds `agreement` (a foreign key, related name `amendments`)."""

    sequence = models.PositiveSmallIntegerField(gettext_lazy("amendment no."), editable=False)
    previous_start = models.DateField(gettext_lazy("start before"))
    previous_end = models.DateField(gettext_lazy("end before"))
    start_date = models.DateField(gettext_lazy("start"))
    end_date = models.DateField(gettext_lazy("end"))
    effective_date = models.DateField(gettext_lazy("effective from"))
    reason = models.TextField(gettext_lazy("reason for the change"))
    signed_copy = models.CharField(max_length=300, blank=True, editable=False)  # a name under the app's folder
    signed_copy_name = models.CharField(gettext_lazy("signed copy"), max_length=200, blank=True)
    signed_copy_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
                                   verbose_name=gettext_lazy("recorded by"))  # fmt: skip
    created_at = models.DateTimeField(gettext_lazy("recorded"), default=timezone.now)
    # when the agreement's stored term became this one: at once, or (effective later) by the worker on its day
    applied_at = models.DateTimeField(gettext_lazy("took effect"), null=True, blank=True, editable=False)
    # never applied: the agreement went out of force before the effective date (`lapse`), why, and the renewal's number
    lapsed_at = models.DateTimeField(gettext_lazy("lapsed"), null=True, blank=True, editable=False)
    lapse_cause = models.CharField(gettext_lazy("why it lapsed"), max_length=12, blank=True, editable=False,
                                   choices=LapseCause.choices)  # fmt: skip
    lapsed_by = models.CharField(gettext_lazy("renewed by"), max_length=32, blank=True, editable=False)

    class Meta:
        abstract = True
        ordering = ["agreement", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "sequence"], name="%(app_label)s_%(class)s_sequence"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def number(self) -> str:
        return f"{self.agreement.number}-A{self.sequence}"

    @property
    def state(self) -> str:
        """applied (the agreement's term became this one), waiting (its effective date ahead) or lapsed (never
        applied: the agreement went out of force before its day)."""
        if self.applied_at is not None:
            return "applied"
        return "lapsed" if self.lapsed_at is not None else "waiting"

    @property
    def lapse_reason(self) -> str:
        """Why the amendment was never applied, for the pages and the API; empty unless it lapsed."""
        if self.lapsed_at is None:
            return ""
        day = timezone.localtime(self.lapsed_at).date().isoformat()
        if self.lapse_cause == LapseCause.RENEWED:
            if self.lapsed_by:
                return _("Lapsed, not applied: the agreement was renewed by %(number)s.") % {"number": self.lapsed_by}
            return _("Lapsed, not applied: the agreement was renewed on %(date)s.") % {"date": day}
        if self.lapse_cause == LapseCause.ENDED:
            return _("Lapsed, not applied: the agreement ended on %(date)s when the customer was de-listed.") % {
                "date": day}  # fmt: skip
        return _("Lapsed, not applied: the agreement was terminated on %(date)s.") % {"date": day}


class Terms:
    """What an app's agreements need of amendments; the app subclasses it once (module docstring)."""

    amendment_model: type[TermAmendment]
    amendable_statuses: tuple = ()
    title_zh = ""  # the agreement's name on the amendment's PDF: 重点客户专属服务协议
    title_en = ""

    def require(self, user, agreement) -> None:
        """Refuse (PermissionDenied) a user who may not change this agreement's term (access.may_change_agreement_term)."""
        from . import access

        access.require_agreement_term(user, agreement)

    def check_version(self, agreement, version) -> None:
        """Refuse a version that is not the agreement's (the app's way: a stale page or a missing version)."""
        raise NotImplementedError

    def stale(self, current_version: int | None) -> Exception:
        raise NotImplementedError

    def not_amendable(self, agreement) -> str | None:
        """Why this agreement's term is not amended now (its status, its account), or None."""
        raise NotImplementedError

    def term_errors(self, agreement, start: dt.date, end: dt.date) -> dict:
        """The app's own rules for a term (as when the agreement is recorded), per field."""
        return {}

    def lock(self, agreement) -> None:
        """Take the locks the app's other changes of agreements take first (in the caller's transaction)."""

    def follow_end(self, user, agreement, previous: tuple[dt.date, dt.date]) -> tuple[list[str], dict]:
        """What follows the term once `agreement` holds the new one (its renewal reminder), set on `agreement`, under
        its lock: (the fields it set, the audit changes {field: [before, after]} among them). A renewal reminder sent
        already goes out again only when it named another end than the new one (`rearm_reminder`)."""
        return [], {}

    def schedule(self, agreement, amendment) -> tuple[list[str], dict]:
        """An amendment effective later was recorded: what makes the worker look at the agreement on its day, and the
        renewal reminder following the end the amendment sets, set on `agreement` under its lock; (the fields it set,
        the audit changes among them)."""
        return [], {}

    def files_dir(self) -> Path:
        raise NotImplementedError

    def parties(self, agreement) -> tuple[str, dict, list]:
        """Party B's heading, its name/credit code/address, and further rows of the parties' table (contract_pdf)."""
        raise NotImplementedError

    def issue(self, amendment) -> Path | None:
        """Keep the amendment's PDF now (the key-account agreements keep theirs); the file written, or None."""
        return None


def not_signed_message() -> str:
    """Why an agreement not signed yet gets no amendment: its term is corrected in place."""
    return _("This agreement is not signed yet: correct its term instead of amending it.")


# --- reading -------------------------------------------------------------------------------------------------


def signed_term(agreement) -> tuple[dt.date, dt.date]:
    """The term the agreement was signed with: before its first amendment (its term in force when it has none)."""
    first = agreement.amendments.order_by("sequence").only("previous_start", "previous_end").first()
    if first is None:
        return agreement.start_date, agreement.end_date
    return first.previous_start, first.previous_end


def term_on(agreement, day: dt.date) -> tuple[dt.date, dt.date]:
    """The agreement's term on `day`: the latest amendment in effect by then (its effective date on or before it),
    else the term as signed. The one answer to "which term holds on day D" (the stored term is term_on(today))."""
    amendments = sorted(agreement.amendments.all(), key=lambda a: a.sequence)
    # a lapsed amendment never held (it was never applied), whatever its effective date
    in_effect = [a for a in amendments if a.effective_date <= day and a.lapsed_at is None]
    if in_effect:
        return in_effect[-1].start_date, in_effect[-1].end_date
    if amendments:
        return amendments[0].previous_start, amendments[0].previous_end
    return agreement.start_date, agreement.end_date


def pending(agreement):
    """The amendment recorded but not in effect yet (its effective date ahead), or None; a lapsed one is not."""
    return agreement.amendments.filter(applied_at__isnull=True, lapsed_at__isnull=True).order_by("sequence").first()


def rearm_reminder(agreement, end: dt.date) -> dict:
    """The renewal reminder once the agreement's end is (or will be, an amendment waiting for its day) `end`: one
    sent already for another end (`renewal_notified_for`, the end it named) is forgotten, so that the worker reminds
    again ahead of `end`, once; one sent for `end` stands. Set on `agreement`; the audit changes ({} when it stands).
    The caller saves `renewal_notified_at` and `renewal_notified_for`."""
    if agreement.renewal_notified_at is None or agreement.renewal_notified_for == end:
        return {}
    changes = {"renewal_notified_at": [agreement.renewal_notified_at, None]}
    agreement.renewal_notified_at = agreement.renewal_notified_for = None
    return changes


def reminded_end(agreement) -> dt.date:
    """The end the renewal reminder names and is counted from: the end the agreement will have once the amendment
    waiting for its day applies (extended: no reminder for the end it has now; shortened: the reminder earlier), else
    its end in force."""
    waiting = pending(agreement) if agreement.pk else None
    return waiting.end_date if waiting is not None else agreement.end_date


def amendment_of(agreement, sequence: int):
    """The agreement's amendment number `sequence` (its agreement set, for its PDF and signed copy), or 404."""
    from django.http import Http404

    amendment = agreement.amendments.filter(sequence=sequence).first()
    if amendment is None:
        raise Http404
    amendment.agreement = agreement
    return amendment


def history(agreement) -> list:
    """The agreement's amendments, oldest first, with who recorded them."""
    return list(agreement.amendments.select_related("created_by").order_by("sequence"))


def attach_history(agreements) -> None:
    """Give each agreement its `amendment_list` and `signed_start`/`signed_end` (one query for them all)."""
    agreements = list(agreements)
    if not agreements:
        return
    model = type(agreements[0]).amendments.rel.related_model
    found: dict[int, list] = {a.pk: [] for a in agreements}
    for amendment in model.objects.filter(agreement__in=agreements).select_related("created_by").order_by("sequence"):
        found[amendment.agreement_id].append(amendment)
    for agreement in agreements:
        agreement.amendment_list = found[agreement.pk]
        for amendment in agreement.amendment_list:
            amendment.agreement = agreement
        first = agreement.amendment_list[0] if agreement.amendment_list else None
        agreement.signed_start = first.previous_start if first else agreement.start_date
        agreement.signed_end = first.previous_end if first else agreement.end_date
        # the amendment signed ahead of its effective date: the page shows it beside the term in force
        agreement.pending_amendment = next(
            (a for a in agreement.amendment_list if a.applied_at is None and a.lapsed_at is None), None)


def signed_term_fields() -> tuple:
    """An agreement serializer's `signed_start_date` and `signed_end_date` (SignedTermFields reads them), declared
    where they are called so that they keep their place among its fields."""
    return (
        serializers.SerializerMethodField(help_text="The start as signed (before any amendment)."),
        serializers.SerializerMethodField(help_text="The end as signed (before any amendment)."),
    )


class SignedTermFields:
    """An agreement serializer's `signed_start_date` and `signed_end_date` (signed_term_fields): the term as signed
    (`signed_term`), read from the agreement's prefetched `amendments` (no query per agreement)."""

    def _signed(self, obj) -> tuple:
        first = next(iter(sorted(obj.amendments.all(), key=lambda a: a.sequence)), None)
        return (first.previous_start, first.previous_end) if first else (obj.start_date, obj.end_date)

    def get_signed_start_date(self, obj) -> dt.date:
        return self._signed(obj)[0]

    def get_signed_end_date(self, obj) -> dt.date:
        return self._signed(obj)[1]


# --- recording -----------------------------------------------------------------------------------------------


def _day(errors: dict, field: str, value):
    """A day as typed on a page (YYYY-MM-DD) or parsed by a form or the API; an error under `field` otherwise."""
    if value in (None, ""):
        errors[field] = [_("Give the date.")]
        return None
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            errors[field] = [_("Give the date as YYYY-MM-DD.")]
            return None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        errors[field] = [_("Give the date as YYYY-MM-DD.")]
        return None
    return value


def clean(agreement, terms: Terms, data: dict) -> dict:
    """The amendment's values checked: the new term (the app's rules, and another than the current one; of an expired
    agreement, an extension to today or later), the reason (required), the effective date (ahead of today at most to
    the day after the current end, not before the signing nor the latest amendment, not after the new end), no other
    amendment waiting for its effective date. A ValidationError per field; nothing is written."""
    errors: dict = {}
    refusal = terms.not_amendable(agreement)
    if refusal:
        errors["status"] = [refusal]
    start = _day(errors, "start_date", data.get("start_date"))
    end = _day(errors, "end_date", data.get("end_date"))
    effective = _day(errors, "effective_date", data.get("effective_date"))
    reason = str(data.get("reason") or "").replace("\x00", "").strip()
    if not reason:
        errors["reason"] = [_("Say why the term changes: the reason is part of the amendment.")]
    elif len(reason) > REASON_MAX:
        errors["reason"] = [_("At most %(n)d characters.") % {"n": REASON_MAX}]
    waiting = None if refusal else pending(agreement)
    if waiting is not None:
        waiting.agreement = agreement
        errors["status"] = [_("Amendment %(number)s takes effect on %(date)s: record another amendment once it has.")
                            % {"number": waiting.number, "date": waiting.effective_date.isoformat()}]  # fmt: skip
        refusal = errors["status"][0]
    today = timezone.localdate()
    expired = not refusal and agreement.end_date < today  # run out, not renewed nor ended: an amendment extends it
    if start and end and not refusal:
        if expired and end < today:
            errors["end_date"] = [_("This agreement's term ended on %(date)s: an amendment of it extends the term, to "
                                    "today or later.") % {"date": agreement.end_date.isoformat()}]  # fmt: skip
        elif (start, end) == (agreement.start_date, agreement.end_date):
            errors["end_date"] = [_("This is the agreement's term already (%(start)s – %(end)s): an amendment changes "
                                    "the start, the end or both.")
                                  % {"start": start.isoformat(), "end": end.isoformat()}]  # fmt: skip
        else:
            for field, messages in terms.term_errors(agreement, start, end).items():
                errors.setdefault(field, messages)
    if effective:
        # the latest amendment that took effect or will: a lapsed one never did
        latest = (agreement.amendments.filter(lapsed_at__isnull=True).order_by("-sequence")
                  .values_list("effective_date", flat=True).first())  # fmt: skip
        if effective > today and effective > agreement.end_date + dt.timedelta(days=1):
            # ahead of today: while the agreement runs, at the latest the day after its current end (no gap in which
            # it would expire before the amendment takes effect)
            errors["effective_date"] = [_("An amendment signed ahead of its effective date takes effect while the "
                                          "agreement runs: on %(date)s at the latest, the day after its current "
                                          "end.") % {"date": (agreement.end_date + dt.timedelta(days=1)).isoformat()}]  # fmt: skip
        elif agreement.signed_date and effective < agreement.signed_date:
            errors["effective_date"] = [_("The amendment cannot take effect before the agreement was signed "
                                          "(%(date)s).") % {"date": agreement.signed_date.isoformat()}]  # fmt: skip
        elif latest and effective < latest:
            errors["effective_date"] = [_("The amendment cannot take effect before the latest one did (%(date)s).")
                                        % {"date": latest.isoformat()}]  # fmt: skip
        elif end and "end_date" not in errors and effective > end:
            errors["effective_date"] = [_("The amendment takes effect within the term it sets: on %(date)s or "
                                          "before.") % {"date": end.isoformat()}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    return {"start_date": start, "end_date": end, "effective_date": effective, "reason": reason,
            "signed_copy": data.get("signed_copy")}


def record(user, agreement, terms: Terms, data: dict, *, version=None):
    """Record an amendment of a signed agreement's term (`data`: start_date, end_date, effective_date, reason and
    an optional signed_copy upload) on the version of the agreement the user loaded. The agreement's term becomes
    the new one, its version moves on (a page opened before is refused), what follows its end is set again
    (Terms.follow_end), the amendment's PDF is kept where the app keeps its agreements' (Terms.issue); the amendment
    and the agreement's change are audited, the term before and after. Permission first, then the version, then
    the values. Returns the amendment."""
    terms.require(user, agreement)
    terms.check_version(agreement, version)
    values = clean(agreement, terms, data)
    expected = agreement.version  # the version the user loaded (check_version refused any other)
    written: list[Path] = []
    if values["signed_copy"] is not None:
        path, copy_name, copy_sha256 = uploads.keep_scan(
            "signed_copy", values["signed_copy"], terms.files_dir(), f"{agreement.number}-amendment",
            wrong_type=_("Upload the signed amendment as a PDF, PNG or JPEG file."))  # fmt: skip
        written.append(path)
    else:
        path, copy_name, copy_sha256 = None, "", ""
    model = terms.amendment_model
    try:
        with transaction.atomic():
            terms.lock(agreement)
            fresh = type(agreement).objects.select_for_update().filter(pk=agreement.pk).first()
            if fresh is None or fresh.version != expected:
                raise terms.stale(None if fresh is None else fresh.version)
            agreement.refresh_from_db()
            # checked again as it is now, under its lock: expired by the worker meanwhile, another agreement generated
            values = {**clean(agreement, terms, data), "signed_copy": values["signed_copy"]}
            previous = (agreement.start_date, agreement.end_date)
            sequence = (model.objects.filter(agreement=agreement).aggregate(n=models.Max("sequence"))["n"] or 0) + 1
            now_in_effect = values["effective_date"] <= timezone.localdate()
            amendment = model.objects.create(
                agreement=agreement, sequence=sequence, previous_start=previous[0], previous_end=previous[1],
                start_date=values["start_date"], end_date=values["end_date"], effective_date=values["effective_date"],
                reason=values["reason"], signed_copy=path.name if path else "", signed_copy_name=copy_name,
                signed_copy_sha256=copy_sha256, created_by=user, applied_at=timezone.now() if now_in_effect else None,
            )  # fmt: skip
            if now_in_effect:
                agreement.start_date, agreement.end_date = values["start_date"], values["end_date"]
                followed, followed_changes = terms.follow_end(user, agreement, previous)
                fields = ["start_date", "end_date", *followed]
            else:  # the term stays until its day (apply_due); the agreement moves on a version all the same
                followed, followed_changes = terms.schedule(agreement, amendment)
                fields = list(followed)
            done = type(agreement).objects.filter(pk=agreement.pk, version=expected).update(
                version=expected + 1, **{f: getattr(agreement, f) for f in fields})  # fmt: skip
            if not done:
                raise terms.stale(type(agreement).objects.filter(pk=agreement.pk).values_list("version", flat=True).first())
            agreement.version = expected + 1
            issued = terms.issue(amendment)
            if issued is not None:
                written.append(issued)
            created = {"start_date": [None, amendment.start_date], "end_date": [None, amendment.end_date],
                       "previous_start": [None, previous[0]], "previous_end": [None, previous[1]],
                       "effective_date": [None, amendment.effective_date], "reason": [None, amendment.reason]}  # fmt: skip
            if path is not None:
                created["signed_copy"] = [None, path.name]
            fingerprints = {"sha256": copy_sha256, "document_sha256": getattr(amendment, "document_sha256", "")}
            audit.record(A.CREATE, amendment, user=user, changes=created,
                         **{k: v for k, v in fingerprints.items() if v})  # fmt: skip
            if now_in_effect:
                changes = {"start_date": [previous[0], agreement.start_date],
                           "end_date": [previous[1], agreement.end_date]}  # fmt: skip
                changes = {k: v for k, v in changes.items() if v[0] != v[1]}
                audit.record(A.UPDATE, agreement, user=user, changes={**changes, **followed_changes},
                             amendment=amendment.number)  # fmt: skip
            elif followed_changes:  # the renewal reminder follows the end the amendment sets
                audit.record(A.UPDATE, agreement, user=user, changes=followed_changes, amendment=amendment.number)
    except BaseException:
        for file in written:
            file.unlink(missing_ok=True)
        raise
    return amendment


def apply_due(agreement, terms: Terms, today: dt.date | None = None) -> bool:
    """The worker, under the agreement's lock (the caller's transaction, `agreement` read under it): the amendment
    signed ahead of its effective date that has come due becomes the agreement's term (term_on today), what follows
    the end is set again (Terms.follow_end), the agreement moves on a version; audited as the system's change, naming
    the amendment. Whether one was applied."""
    today = today or timezone.localdate()
    waiting = agreement.amendments.filter(applied_at__isnull=True, lapsed_at__isnull=True, effective_date__lte=today)
    due = waiting.order_by("sequence").last()
    if due is None:
        return False
    previous = (agreement.start_date, agreement.end_date)
    agreement.start_date, agreement.end_date = term_on(agreement, today)
    # a reminder sent while it waited named the end it sets (reminded_end), and stands; one sent for another end goes
    # out again ahead of the new one (rearm_reminder: keyed on the end it named, not on when it was sent)
    followed, followed_changes = terms.follow_end(None, agreement, previous)
    agreement.version += 1
    type(agreement).objects.filter(pk=agreement.pk).update(
        version=agreement.version, **{f: getattr(agreement, f) for f in ["start_date", "end_date", *followed]})  # fmt: skip
    waiting.update(applied_at=timezone.now())
    changes = {"start_date": [previous[0], agreement.start_date], "end_date": [previous[1], agreement.end_date]}
    changes = {k: v for k, v in changes.items() if v[0] != v[1]}
    audit.record(A.UPDATE, agreement, actor_name="system", changes={**changes, **followed_changes},
                 amendment=f"{agreement.number}-A{due.sequence}")  # fmt: skip
    return True


def lapse(agreement, terms: Terms, cause: str, *, user=None, renewal=None, today: dt.date | None = None,
          overlapping: tuple[dt.date, dt.date] | None = None) -> list:  # fmt: skip
    """The agreement goes out of force (`cause`, a LapseCause: terminated, ended on de-listing, renewed by `renewal`),
    in the caller's transaction, under the agreement's lock, before its status changes: an amendment whose day has come
    took effect and is applied first (apply_due); the one still waiting for its day lapses — never applied, stamped with
    when and why, audited as a change of the amendment by `user` (the system's without). `overlapping` (a renewal
    signed ahead of its start): only an amendment whose new term overlaps that term lapses; one that keeps clear of it
    applies on its day. Returns the amendments that lapsed."""
    today = today or timezone.localdate()
    if agreement.status in terms.amendable_statuses:
        apply_due(agreement, terms, today)
    waiting = list(agreement.amendments.filter(applied_at__isnull=True, lapsed_at__isnull=True).order_by("sequence"))
    if overlapping is not None:
        waiting = [a for a in waiting if a.start_date <= overlapping[1] and a.end_date >= overlapping[0]]
    now = timezone.now()
    by = getattr(renewal, "number", "") if cause == LapseCause.RENEWED else ""
    who = {"user": user} if user is not None else {"actor_name": "system"}
    for amendment in waiting:
        type(amendment).objects.filter(pk=amendment.pk).update(lapsed_at=now, lapse_cause=cause, lapsed_by=by)
        amendment.lapsed_at, amendment.lapse_cause, amendment.lapsed_by = now, cause, by
        amendment.agreement = agreement
        changes = {"lapsed_at": [None, now], "lapse_cause": [None, cause]}
        if by:
            changes["lapsed_by"] = [None, by]
        audit.record(A.UPDATE, amendment, changes=changes, **who)
    return waiting


def lapsing(agreement, *, overlapping: tuple[dt.date, dt.date] | None = None, today: dt.date | None = None) -> list:
    """What `lapse` would make lapse now, for the form that ends or renews the agreement to say so beforehand: the
    amendment waiting for a day still ahead (overlapping `overlapping`, when given)."""
    today = today or timezone.localdate()
    waiting = agreement.amendments.filter(applied_at__isnull=True, lapsed_at__isnull=True, effective_date__gt=today)
    found = []
    for amendment in waiting.order_by("sequence"):
        if overlapping is None or (amendment.start_date <= overlapping[1] and amendment.end_date >= overlapping[0]):
            amendment.agreement = agreement
            found.append(amendment)
    return found


def lapse_warning(amendment) -> str:
    """What terminating the agreement does to `amendment`, waiting for a day still ahead (the terminate button's
    warning, the API's refusal)."""
    return _("Amendment %(number)s takes effect on %(date)s: terminating the agreement before then, it lapses and is "
             "never applied.") % {"number": amendment.number, "date": amendment.effective_date.isoformat()}  # fmt: skip


class LapseNotConfirmed(ValidationError):
    """Ending the agreement would make the amendments `lapsing` lapse, and the client has not confirmed it (the API's
    `confirm_lapse`): refused under `confirm_lapse`, one message per amendment and what to send; nothing written."""

    def __init__(self, lapsing: list):
        messages = [lapse_warning(a) for a in lapsing]
        messages.append(_("Send confirm_lapse: true to terminate the agreement all the same."))
        super().__init__({"confirm_lapse": messages})
        self.lapsing = lapsing


def copy_attached_message(amendment) -> str:
    return _("Amendment %(number)s has its signed copy already (%(name)s): the copy of a signed amendment is kept as "
             "uploaded, never replaced.") % {"number": amendment.number, "name": amendment.signed_copy_name}


class CopyAttachedAlready(ValidationError):
    """The amendment had its signed copy already; `mine`: the user who sent this one attached it (a form sent twice)."""

    def __init__(self, amendment, mine: bool):
        super().__init__({"signed_copy": [copy_attached_message(amendment)]})
        self.mine = mine


def attach_signed_copy(user, amendment, terms: Terms, upload):
    """The signed copy of an amendment recorded without one (recorded, its PDF printed and signed, the scan uploaded
    days later): the checks of the agreement's signed copy (a PDF, PNG or JPEG read from its content, 20 MB at most),
    by those who record amendments (Terms.require), whatever the agreement's status since (the scan is its archive).
    Once only: a copy there already is never replaced — the amendment is written once, and its signed copy is the
    evidence of what both parties signed (a better scan is not told from another document); the second of two
    uploads at once, or a form sent twice, is refused (CopyAttachedAlready, `mine` for the user's own first one).
    Audited with the file's name and SHA-256. Returns the amendment."""
    agreement = amendment.agreement
    terms.require(user, agreement)
    if amendment.signed_copy:
        raise CopyAttachedAlready(amendment, _attached_by(user, amendment))
    if upload is None:
        raise ValidationError({"signed_copy": [_("Upload the signed copy.")]})
    path, copy_name, copy_sha256 = uploads.keep_scan(
        "signed_copy", upload, terms.files_dir(), f"{agreement.number}-amendment",
        wrong_type=_("Upload the signed amendment as a PDF, PNG or JPEG file."))  # fmt: skip
    model = type(amendment)
    try:
        with transaction.atomic():
            terms.lock(agreement)
            done = model.objects.filter(pk=amendment.pk, signed_copy="").update(
                signed_copy=path.name, signed_copy_name=copy_name, signed_copy_sha256=copy_sha256)  # fmt: skip
            if not done:  # another upload came first
                amendment.refresh_from_db()
                raise CopyAttachedAlready(amendment, _attached_by(user, amendment))
            amendment.signed_copy, amendment.signed_copy_name = path.name, copy_name
            amendment.signed_copy_sha256 = copy_sha256
            audit.record(A.UPDATE, amendment, user=user, changes={"signed_copy": [None, path.name]},
                         sha256=copy_sha256)  # fmt: skip
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return amendment


def _attached_by(user, amendment) -> bool:
    """Whether `user` attached the amendment's signed copy (recording the amendment or later)."""
    return AuditEntry.objects.filter(object_type=amendment._meta.label_lower, object_id=str(amendment.pk),
                                     actor_id=user.pk, changes__has_key="signed_copy").exists()  # fmt: skip


# --- the amendment's text --------------------------------------------------------------------------------------


def render(amendment, terms: Terms) -> bytes:
    """The amendment as a bilingual contract (Chinese first, the English below, whatever the reader's language):
    both parties, the agreement it amends (number, signing date, the term before), the new term, the reason as
    typed, the day it takes effect, and the signature blocks (core/contract_pdf.py)."""
    from django.utils import translation

    from .contract_pdf import Bilingual
    from .contract_pdf import date as day
    from .wording import company_name

    with translation.override("zh-hans"):
        agreement = amendment.agreement
        doc = Bilingual("补充协议 Amendment")
        zh, _en = company_name()
        doc.number("补充协议编号 Amendment No.", amendment.number)
        doc.number("原协议编号 Agreement No.", agreement.number)
        head, customer, rows = terms.parties(agreement)
        doc.heading("一、协议双方", "1. Parties")
        doc.parties(head, customer, rows)
        doc.heading("二、原协议", "2. The agreement amended")
        signed = day(agreement.signed_date) or "—"
        doc.para(f"甲乙双方于 {signed} 签订《{terms.title_zh}》（编号 {agreement.number}）。本补充协议签订前，该协议期限自 "
                 f"{day(amendment.previous_start)} 起至 {day(amendment.previous_end)} 止。",
                 f"The parties signed the {terms.title_en} No. {agreement.number} on {signed}. Before this amendment "
                 f"its term ran from {day(amendment.previous_start)} to {day(amendment.previous_end)}.")  # fmt: skip
        doc.heading("三、期限变更", "3. Change of the term")
        doc.para(f"经双方协商一致，协议期限变更为自 {day(amendment.start_date)} 起至 {day(amendment.end_date)} 止。",
                 f"By mutual agreement, the term of the agreement is changed to run from {day(amendment.start_date)} "
                 f"to {day(amendment.end_date)}.")  # fmt: skip
        doc.heading("四、变更原因", "4. Reason for the change")
        doc.para(amendment.reason, "As written above.")
        doc.heading("五、其他", "5. Other terms")
        doc.para(f"本补充协议自 {day(amendment.effective_date)} 起生效，是原协议不可分割的组成部分，与原协议具有同等法律效力；"
                 "除本补充协议所作变更外，原协议其他条款不变。本补充协议一式两份，双方各执一份。",
                 f"This amendment takes effect on {day(amendment.effective_date)} and forms an integral part of the "
                 "agreement, with the same legal force; all its other terms remain unchanged. It is made in two "
                 "copies, one for each party.")  # fmt: skip
        doc.signatures(zh, customer.get("name", ""))
        return doc.output()
