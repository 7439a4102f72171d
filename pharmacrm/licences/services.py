"""Customer licences: who sees and records them, the rules of each kind's number, the status of a licence and of a
customer's qualification, verification by a second person, and the worker's expiry reminders. Pages and API call
only this module (docs/licences.md)."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, personal, uploads
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers import normalise
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError

from .models import Licence, LicenceKind, Scope

A = AuditEntry.Action
log = logging.getLogger(__name__)
FIELDS = ("kind", "number", "scope", "scope_note", "issuer", "issued_on", "valid_until")
# free text a reader who sees personal data masked is shown masked (personal.FREE_TEXT_OF): an edit by such a user puts
# each mask still in it back as stored
TEXTS = personal.FREE_TEXT_OF["licences.licence"]
# 省份简称 + two capital letters (the trade and the legal form) + 7 digits (the licences issued before 2024) or 9 (a
# four-digit area code and a five-digit serial, 《药品经营和使用质量监督管理办法》 2024)
PROVINCES = "京津沪渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川蜀贵黔云滇藏陕秦甘陇青宁新兵"
DRUG_TRADING_NUMBER = re.compile(rf"[{PROVINCES}][A-Z]{{2}}(?:\d{{7}}|\d{{9}})")
PRACTICE_NUMBER = re.compile(r"[0-9A-Z]{8,40}")


class Status:
    VALID = "valid"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    UNVERIFIED = "unverified"


STATUS_LABELS = {
    Status.VALID: gettext_lazy("Valid"),
    Status.EXPIRING: gettext_lazy("Expiring soon"),
    Status.EXPIRED: gettext_lazy("Expired"),
    Status.UNVERIFIED: gettext_lazy("Not verified yet"),
}


# --- who sees and records what ---------------------------------------------------------------------------------


def licences_for(user, qs=None):
    """The licences of the customers the user may see."""
    qs = Licence.objects.all() if qs is None else qs
    if not access.can(user, Cap.VIEW_CUSTOMERS):
        return qs.none()
    if access.can(user, Cap.ALL_CUSTOMERS):
        return qs
    return qs.filter(institution__in=access.institutions_for(user).values("pk"))


def may_record(user, institution: Institution) -> bool:
    return access.can(user, Cap.MANAGE_LICENCES) and access.can_see(user, institution)


def require_record(user, institution: Institution) -> None:
    if not may_record(user, institution):
        raise PermissionDenied


def may_verify(user, licence: Licence) -> bool:
    """A second person checks a licence against the original (four eyes): never the one who recorded or last
    changed it."""
    return (access.can(user, Cap.VERIFY_LICENCES) and licence.recorded_by_id != user.pk
            and licence.verified_at is None and access.can_see(user, licence.institution))  # fmt: skip


# --- status ----------------------------------------------------------------------------------------------------


def warn_days() -> int:
    return int(settings.LICENCE_NOTICE_DAYS)


def status_of(licence: Licence, today: dt.date | None = None) -> str:
    today = today or timezone.localdate()
    if licence.valid_until is not None and licence.valid_until < today:
        return Status.EXPIRED
    if licence.verified_at is None:
        return Status.UNVERIFIED
    if licence.valid_until is not None and licence.valid_until <= today + dt.timedelta(days=warn_days()):
        return Status.EXPIRING
    return Status.VALID


def required_kinds(institution: Institution) -> list[str]:
    """The licences a customer of this type must hold before it is sold to (settings.LICENCES_REQUIRED)."""
    return list(settings.LICENCES_REQUIRED.get(institution.kind, ()))


@dataclass
class Qualification:
    """A customer's qualification as a whole: `ok` when every required kind has a verified licence in force."""

    licences: list[Licence]
    missing: list[str]  # required kinds with no licence in force (none recorded, or every one expired)
    unverified: list[str]  # required kinds whose licences in force are not verified yet
    expiring: list[Licence]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unverified

    @property
    def missing_labels(self) -> list[str]:
        return [str(LicenceKind(k).label) for k in self.missing]

    @property
    def unverified_labels(self) -> list[str]:
        return [str(LicenceKind(k).label) for k in self.unverified]


def qualification(institution: Institution, licences: list[Licence] | None = None,
                  today: dt.date | None = None) -> Qualification:  # fmt: skip
    today = today or timezone.localdate()
    if licences is None:
        licences = list(institution.licences.select_related("recorded_by", "verified_by").order_by("kind", "-valid_until"))
    for licence in licences:
        licence.status = status_of(licence, today)
        licence.status_label = STATUS_LABELS[licence.status]
    missing, unverified = [], []
    for kind in required_kinds(institution):
        in_force = [x for x in licences if x.kind == kind and x.status != Status.EXPIRED]
        if not in_force:
            missing.append(kind)
        elif all(x.verified_at is None for x in in_force):
            unverified.append(kind)
    expiring = [x for x in licences if x.status == Status.EXPIRING]
    return Qualification(licences, missing, unverified, expiring)


# --- checking and saving ---------------------------------------------------------------------------------------


def _date(errors: dict, field: str, value) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        errors[field] = [_("Enter a date as YYYY-MM-DD.")]
        return None


def _scope(errors: dict, value) -> list[str]:
    if value in (None, ""):
        return []
    items = [value] if isinstance(value, str) else list(value)
    chosen = []
    for item in items:
        item = str(item).strip()
        if item and item not in Scope.values:
            errors["scope"] = [_("“%(value)s” is not a business-scope category.") % {"value": item[:40]}]
            return []
        if item and item not in chosen:
            chosen.append(item)
    return [s for s in Scope.values if s in chosen]  # in the licence's own order


def clean(institution: Institution, data: dict, *, current: Licence | None = None) -> dict:
    """The values to save, or a ValidationError naming each field and its reason."""
    errors: dict = {}
    kind = str(data.get("kind") or "").strip()
    if not kind:
        errors["kind"] = [_("Choose the type of licence.")]
    elif kind not in LicenceKind.values:
        errors["kind"] = [_("Choose one of the listed types.")]
    number = re.sub(r"\s+", "", str(data.get("number") or "")).upper()
    if not number:
        errors["number"] = [_("Enter the licence number.")]
    elif len(number) > 40:
        errors["number"] = [_("The licence number has at most 40 characters.")]
    elif kind == LicenceKind.BUSINESS:
        try:
            number = normalise.validate_credit_code(number)
        except ValidationError as e:
            errors["number"] = [_("A business licence's number is the unified social credit code: %(reason)s")
                                % {"reason": e.messages[0]}]  # fmt: skip
        else:
            if institution.credit_code and number != institution.credit_code:
                errors["number"] = [_("The business licence's number must be the customer's unified social credit "
                                      "code (%(code)s).") % {"code": institution.credit_code}]  # fmt: skip
    elif kind == LicenceKind.DRUG_TRADING and not DRUG_TRADING_NUMBER.fullmatch(number):
        errors["number"] = [_("A drug trading licence number is the province's one-character abbreviation, two "
                              "capital letters and 7 or 9 digits, e.g. 京AA1234567.")]  # fmt: skip
    elif kind == LicenceKind.MEDICAL_PRACTICE and not PRACTICE_NUMBER.fullmatch(number):
        errors["number"] = [_("A practising licence's registration number has 8 to 40 letters and digits.")]
    scope = _scope(errors, data.get("scope"))
    scope_note = str(data.get("scope_note") or "").strip()
    if len(scope_note) > 500:
        errors["scope_note"] = [_("At most 500 characters.")]
    issuer = str(data.get("issuer") or "").strip()
    if len(issuer) > 100:
        errors["issuer"] = [_("At most 100 characters.")]
    issued_on = _date(errors, "issued_on", data.get("issued_on"))
    valid_until = _date(errors, "valid_until", data.get("valid_until"))
    today = timezone.localdate()
    if issued_on and issued_on > today:
        errors["issued_on"] = [_("The issue date cannot be in the future.")]
    if issued_on and valid_until and valid_until < issued_on:
        errors["valid_until"] = [_("The end of validity cannot lie before the issue date.")]
    if kind in (LicenceKind.DRUG_TRADING, LicenceKind.MEDICAL_PRACTICE, LicenceKind.DEVICE_TRADING) and (
        "valid_until" not in errors and valid_until is None
    ):
        # only a business licence may be long-term (营业期限 长期); the trading and practising licences run 5 years
        errors["valid_until"] = [_("Give the end of validity: this type of licence is never long-term.")]
    if kind == LicenceKind.DRUG_TRADING and "scope" not in errors and not scope:
        errors["scope"] = [_("Choose the business scope printed on the licence.")]
    if errors:
        raise ValidationError(errors)
    return {"kind": kind, "number": number, "scope": scope, "scope_note": scope_note, "issuer": issuer,
            "issued_on": issued_on, "valid_until": valid_until}  # fmt: skip


def _lock_customer(institution: Institution) -> None:
    Institution.objects.select_for_update().filter(pk=institution.pk).first()


def _refuse_twice(institution: Institution, values: dict, current: Licence | None) -> None:
    same = Licence.objects.filter(institution=institution, kind=values["kind"], number=values["number"])
    if current is not None:
        same = same.exclude(pk=current.pk)
    if same.exists():
        raise ValidationError({"number": [_("This licence is already recorded for this customer.")]})


def create(user, institution: Institution, data: dict, scan=None) -> Licence:
    """`scan`: the scanned copy, if there is one (an uploaded file; keep_scan's rules)."""
    require_record(user, institution)
    if institution.merged_into_id:
        raise ValidationError(_("This customer was merged into another: record its licences there."))
    values = clean(institution, data)
    stored = keep_scan(scan, values["number"]) if scan is not None else None
    try:
        with transaction.atomic():
            _lock_customer(institution)  # the same form sent twice at once records one licence
            _refuse_twice(institution, values, None)
            changes = {k: [None, _plain(v)] for k, v in values.items()}
            if stored:
                path, name, sha = stored
                values.update(scan=path.name, scan_name=name, scan_sha256=sha)
                changes["scan"] = [None, path.name]
            licence = Licence.objects.create(institution=institution, recorded_by=user, **values)
            audit.record(A.CREATE, licence, user=user, changes=changes, **({"sha256": stored[2]} if stored else {}))
    except BaseException:
        if stored:
            stored[0].unlink(missing_ok=True)
        raise
    return licence


def update(user, licence: Licence, data: dict, version, scan=None) -> Licence:
    """A correction. Any change of what was checked (number, scope, dates, the scanned copy) needs checking again:
    the verification is cleared. `scan`: a new scanned copy, replacing the one kept (which stays in var/licences/,
    named by this audit entry)."""
    require_record(user, licence.institution)
    if version in (None, ""):
        raise ValidationError({"version": [_("Send the version you loaded, so that changes made by others in the "
                                             "meantime are not overwritten.")]})  # fmt: skip
    data = personal.restore_free_text(user, data, licence, TEXTS)  # masks shown to the editor: as stored
    values = clean(licence.institution, {**{f: getattr(licence, f) for f in FIELDS}, **data}, current=licence)
    stored = keep_scan(scan, values["number"]) if scan is not None else None
    try:
        with transaction.atomic():
            _lock_customer(licence.institution)
            _refuse_twice(licence.institution, values, licence)
            changes = {k: [_plain(getattr(licence, k)), _plain(v)] for k, v in values.items() if getattr(licence, k) != v}
            details = {}
            if stored:
                path, name, sha = stored
                changes["scan"] = [licence.scan or None, path.name]
                details = {"sha256": sha}
                values.update(scan=path.name, scan_name=name, scan_sha256=sha)
            if not changes:
                return licence
            extra = {}
            if licence.verified_at is not None:
                changes["verified_at"] = [_plain(licence.verified_at), None]
                extra = {"verified_at": None, "verified_by": None}
            # a new end of validity is a new reminder clock
            if "valid_until" in changes:
                extra.update(notice_sent_on=None, expiry_sent_on=None)
            done = Licence.objects.filter(pk=licence.pk, version=int(version) if is_id(version) else -1).update(
                recorded_by=user, version=F("version") + 1, **values, **extra)
            if not done:
                raise ConflictError(Licence.objects.get(pk=licence.pk).version)
            audit.record(A.UPDATE, licence, user=user, changes=changes, **details)
    except BaseException:
        if stored:
            stored[0].unlink(missing_ok=True)
        raise
    licence.refresh_from_db()
    return licence


def replace_scan(user, licence: Licence, upload, version) -> Licence:
    """Keep a (new) scanned copy of a licence: a correction like any other (update)."""
    if upload is None:
        require_record(user, licence.institution)
        raise ValidationError({"scan": [_("Upload the scanned copy of the licence.")]})
    return update(user, licence, {}, version, scan=upload)


def verify(user, licence: Licence, version) -> Licence:
    """Checked against the original (or the regulator's register) by a second person."""
    if not access.can(user, Cap.VERIFY_LICENCES) or not access.can_see(user, licence.institution):
        raise PermissionDenied
    if licence.recorded_by_id == user.pk:
        raise ValidationError(_("Someone other than the person who recorded the licence verifies it."))
    if licence.verified_at is not None:
        raise ValidationError(_("This licence is verified already."))
    if status_of(licence) == Status.EXPIRED:
        raise ValidationError(_("An expired licence cannot be verified: record the renewed one."))
    now = timezone.now()
    with transaction.atomic():
        done = Licence.objects.filter(pk=licence.pk, version=int(version) if is_id(version) else -1, verified_at__isnull=True).update(
            verified_by=user, verified_at=now, version=F("version") + 1)
        if not done:
            raise ConflictError(Licence.objects.get(pk=licence.pk).version)
        audit.record(A.UPDATE, licence, user=user, changes={"verified_at": [None, _plain(now)]})
    licence.refresh_from_db()
    return licence


# --- the scanned copy ----------------------------------------------------------------------------------------------


def files_dir() -> Path:
    path = Path(settings.VAR_DIR) / "licences"
    path.mkdir(parents=True, exist_ok=True)
    return path


def keep_scan(upload, number: str) -> tuple[Path, str, str]:
    """Check and write a licence's scanned copy (PDF, PNG or JPEG, at most 20 MB, the type read from the content, the
    file opened) as var/licences/<number>-<uuid hex>.<ext>, before its row is saved; (path, download name, SHA-256).
    The caller deletes it when its transaction fails."""
    return uploads.keep_scan("scan", upload, files_dir(), scan_stem(number))


def scan_stem(number: str) -> str:
    """The start of a scanned copy's file name: the licence number's letters and digits (KEPT_FILE)."""
    return re.sub(r"[^0-9A-Z\u4e00-\u9fff]", "", number.upper())[:40] or "LICENCE"


def kept_scan(licence: Licence) -> bytes:
    return (files_dir() / Path(licence.scan).name).read_bytes()


# what keep_scan writes: 京AA1234567-<uuid>.pdf
KEPT_FILE = re.compile(r"[0-9A-Z\u4e00-\u9fff]{1,40}-[0-9a-f]{32}\.(?:pdf|png|jpg)")
ORPHAN_AGE = dt.timedelta(days=1)


def sweep_orphaned_files(now: dt.datetime | None = None) -> int:
    """The worker: delete the scanned copies in var/licences/ that nothing names, once a day old. The file is written
    before the transaction that records it; a process killed in between (or a database that failed at the commit)
    left it behind. Named means a licence's scan, or a replaced one an audit entry of a licence names (those stay
    archived). A younger file may be an upload still under way. Logged, and one audit entry per sweep that deleted
    something, with the count and the names."""
    from pharmacrm.keyaccounts.services import _file_names

    cutoff = ((now or timezone.now()) - ORPHAN_AGE).timestamp()
    old = []
    for path in files_dir().iterdir():
        try:
            if KEPT_FILE.fullmatch(path.name) and path.is_file() and path.stat().st_mtime < cutoff:
                old.append(path)
        except FileNotFoundError:  # deleted meanwhile
            continue
    if not old:
        return 0
    # read after the listing: a file recorded meanwhile is named here
    named = {Path(n).name for n in Licence.objects.exclude(scan="").values_list("scan", flat=True)}
    history = AuditEntry.objects.filter(object_type="licences.licence")
    for changes, extra in history.values_list("changes", "extra").iterator():
        named.update(_file_names(changes, KEPT_FILE), _file_names(extra, KEPT_FILE))
    gone = []
    for path in old:
        if path.name not in named:
            path.unlink(missing_ok=True)
            gone.append(path.name)
    if gone:
        gone.sort()
        log.warning("licences: %d file(s) nothing names deleted: %s", len(gone), ", ".join(gone))
        audit.record(A.DELETE, ("licences.licence", "", str(len(gone))), actor_name="worker",
                     count=len(gone), files=gone[:1000])  # fmt: skip
    return len(gone)


def _plain(value):
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# --- the worker: expiry reminders -----------------------------------------------------------------------------


def remind(today: dt.date | None = None) -> tuple[int, int]:
    """Tell each customer's owner (and its team's lead) once when a licence comes within LICENCE_NOTICE_DAYS of its
    end, and once when it has expired. Each reminder is claimed by a conditional update, so two workers never send it
    twice. (ahead, expired)."""
    from pharmacrm.notify import services as notify

    today = today or timezone.localdate()
    horizon = today + dt.timedelta(days=warn_days())
    counts = []
    for field, when, title in (
        ("notice_sent_on", Q(valid_until__gte=today, valid_until__lte=horizon),
         gettext_lazy("Licence %(number)s of %(customer)s ends on %(date)s")),
        ("expiry_sent_on", Q(valid_until__lt=today),
         gettext_lazy("Licence %(number)s of %(customer)s has expired (%(date)s)")),
    ):  # fmt: skip
        sent = 0
        due = Licence.objects.filter(when, **{f"{field}__isnull": True}, institution__merged_into__isnull=True)
        for licence in due.select_related("institution__owner", "institution__team__lead"):
            institution = licence.institution
            with transaction.atomic():
                if not Licence.objects.filter(pk=licence.pk, **{f"{field}__isnull": True}).update(**{field: today}):
                    continue
                audit.record(A.UPDATE, licence, changes={field: [None, today.isoformat()]}, actor_name="system")
                team_lead = getattr(institution.team, "lead", None) if institution.team_id else None
                people = {u.pk: u for u in (institution.owner, team_lead) if u is not None and u.is_active}
                if people:
                    notify.send(list(people.values()), kind="licences.expiry",
                                title=Message(title, number=licence.number, customer=institution.name,
                                              date=licence.valid_until.isoformat()),
                                body=Message(gettext_lazy("%(kind)s: ask the customer for the renewed licence before the "
                                                          "next delivery."), kind=licence.get_kind_display()),
                                url=reverse("customers:institution", args=[institution.pk]), obj=licence)  # fmt: skip
                sent += 1
        counts.append(sent)
    return counts[0], counts[1]


def no_customer_message() -> str:
    return _("Name the customer (its id).")


def unknown_customer_message() -> str:
    return _("No such customer, or one you may not see.")


# --- sales while a customer was not qualified (GSP's check after the fact) -------------------------------------

SALES_WINDOW_MAX_DAYS = 366
SALES_CHUNK = 500


def may_review_sales(user) -> bool:
    """Who reads the sales made while a customer lacked a required licence (within the customers they see): sales,
    leadership, quality, analysts and audit. The amounts are shown only to those who see purchases."""
    return access.can(user, Cap.VIEW_CUSTOMERS) and access.can(user, Cap.REVIEW_UNQUALIFIED_SALES)


def require_review_sales(user) -> None:
    if not may_review_sales(user):
        raise PermissionDenied


def default_sales_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The last three months: from the first day of the month two months back to today."""
    today = today or timezone.localdate()
    month = today.month - 2
    year = today.year + (month - 1) // 12
    return dt.date(year, (month - 1) % 12 + 1, 1), today


def clean_sales_window(start, end) -> tuple[dt.date, dt.date]:
    """The period to review, or a ValidationError naming `start` or `end` and the reason."""
    errors: dict = {}
    default_start, default_end = default_sales_window()
    start = _date(errors, "start", start) or default_start
    end = _date(errors, "end", end) or default_end
    if not errors:
        if end > timezone.localdate():
            errors["end"] = [_("The end of the period cannot be in the future.")]
        elif start > end:
            errors["start"] = [_("The start of the period must not lie after its end.")]
        elif (end - start).days >= SALES_WINDOW_MAX_DAYS:
            errors["end"] = [_("Review at most %(days)d days at a time.") % {"days": SALES_WINDOW_MAX_DAYS}]
    if errors:
        raise ValidationError(errors)
    return start, end


@dataclass
class Gap:
    """Days on which a customer lacked a verified licence in force of a kind its type requires."""

    start: dt.date
    end: dt.date
    lacking: tuple  # the kinds lacking
    unverified: tuple  # of those, the kinds a licence recorded but not verified covers

    @property
    def labels(self) -> list[str]:
        return [str(_("%(kind)s (not verified)") % {"kind": LicenceKind(k).label}) if k in self.unverified
                else str(LicenceKind(k).label) for k in self.lacking]  # fmt: skip


def _covers(licence: Licence, day: dt.date) -> bool:
    """A licence is in force on `day` from its issue (unknown: since always) to its end (none: long-term)."""
    return (licence.issued_on is None or licence.issued_on <= day) and (
        licence.valid_until is None or day <= licence.valid_until)  # fmt: skip


def gaps(kinds: list[str], licences: list[Licence], start: dt.date, end: dt.date) -> list[Gap]:
    """The periods within [start, end] on which one of the required `kinds` had no verified licence in force. A
    licence verified counts for every day of its validity, also those before the check (the customer held it)."""
    if not kinds:
        return []
    licences = [x for x in licences if x.kind in kinds]
    bounds = {start, end + dt.timedelta(days=1)}
    for x in licences:
        for day in (x.issued_on, x.valid_until and x.valid_until + dt.timedelta(days=1)):
            if day is not None and start < day <= end:
                bounds.add(day)
    bounds = sorted(bounds)
    out: list[Gap] = []
    for first, after in itertools.pairwise(bounds):  # coverage is the same on every day of [first, after)
        lacking = tuple(k for k in kinds if not any(x.kind == k and x.verified_at and _covers(x, first) for x in licences))
        if not lacking:
            continue
        unverified = tuple(k for k in lacking if any(x.kind == k and not x.verified_at and _covers(x, first)
                                                     for x in licences))  # fmt: skip
        last = after - dt.timedelta(days=1)
        if out and out[-1].end + dt.timedelta(days=1) == first and (out[-1].lacking, out[-1].unverified) == (
                lacking, unverified):  # fmt: skip
            out[-1].end = last
        else:
            out.append(Gap(first, last, lacking, unverified))
    return out


@dataclass
class SaleWhileUnqualified:
    """One order (or the part of it dated in a gap) sold to a customer while it was not qualified."""

    order_number: str
    order_date: dt.date
    lines: int
    amount_fen: int
    gap: Gap

    @property
    def amount(self):
        from pharmacrm.sales.models import yuan

        return yuan(self.amount_fen)


@dataclass
class UnqualifiedBuyer:
    institution: Institution
    gaps: list[Gap]
    sales: list[SaleWhileUnqualified]

    @property
    def orders(self) -> int:
        return len({s.order_number for s in self.sales})

    @property
    def lines(self) -> int:
        return sum(s.lines for s in self.sales)

    @property
    def amount_fen(self) -> int:
        return sum(s.amount_fen for s in self.sales)

    @property
    def amount(self):
        from pharmacrm.sales.models import yuan

        return yuan(self.amount_fen)

    @property
    def first_sale(self) -> dt.date:
        return min(s.order_date for s in self.sales)

    @property
    def last_sale(self) -> dt.date:
        return max(s.order_date for s in self.sales)

    @property
    def sold_gaps(self) -> list[Gap]:
        """The gaps in which something was sold, in order."""
        seen = {id(s.gap) for s in self.sales}
        return [g for g in self.gaps if id(g) in seen]


def sales_while_unqualified(user, start: dt.date, end: dt.date, *, mine: bool = False) -> list[UnqualifiedBuyer]:
    """The customers (in the user's scope, of a type that requires licences) that bought between `start` and `end` on
    days they lacked a verified licence in force of a required kind, with those orders — read from the imported order
    lines (the ERP's order date is the day of sale). Customers are found through the monthly purchase rollups, then
    taken 500 at a time: their licences in one query, the order lines of those with a gap in another."""
    from django.db.models import Count, Sum

    from pharmacrm.sales.models import MonthlyRollup, OrderLine

    require_review_sales(user)
    required = {k: list(v) for k, v in settings.LICENCES_REQUIRED.items() if v}
    first_month, last_month = start.replace(day=1), end.replace(day=1)
    bought = MonthlyRollup.objects.filter(month__gte=first_month, month__lte=last_month).values("institution_id")
    customers = access.institutions_for(user, Institution.objects.active()).filter(kind__in=list(required), pk__in=bought)
    if mine:
        customers = customers.filter(owner=user)
    customers = list(customers.select_related("owner").order_by("name", "id"))
    out: list[UnqualifiedBuyer] = []
    for at in range(0, len(customers), SALES_CHUNK):
        chunk = customers[at : at + SALES_CHUNK]
        held: dict[int, list[Licence]] = {}
        for licence in Licence.objects.filter(institution__in=[c.pk for c in chunk]).only(
                "institution_id", "kind", "issued_on", "valid_until", "verified_at"):  # fmt: skip
            held.setdefault(licence.institution_id, []).append(licence)
        found = {c.pk: (c, g) for c in chunk if (g := gaps(required[c.kind], held.get(c.pk, []), start, end))}
        if not found:
            continue
        rows = (OrderLine.objects.filter(institution_id__in=list(found), month__gte=first_month, month__lte=last_month,
                                         order_date__gte=start, order_date__lte=end)
                .values("institution_id", "order_number", "order_date")
                .annotate(n=Count("id"), fen=Sum("amount_fen")).order_by("order_date", "order_number"))  # fmt: skip
        sold: dict[int, list[SaleWhileUnqualified]] = {}
        for row in rows:
            for gap in found[row["institution_id"]][1]:
                if gap.start <= row["order_date"] <= gap.end:
                    sold.setdefault(row["institution_id"], []).append(SaleWhileUnqualified(
                        row["order_number"], row["order_date"], row["n"], row["fen"] or 0, gap))  # fmt: skip
                    break
        out += [UnqualifiedBuyer(found[pk][0], found[pk][1], sales) for pk, sales in sold.items()]
    out.sort(key=lambda b: (b.institution.name, b.institution.pk))
    return out
