"""Sales targets and their attainment (销售目标与达成, seed 000 §2.3): the targets managers set per person or team and
period, who may see which figures, and the attainment of a period computed from the monthly rollups.

Definitions (docs/sales-targets.md; the page says them too):

- a person's actual is the sum of the monthly rollups of the customers they own *now* (the current owner: a
  customer handed to another rep takes its purchases, past ones included, to the new owner); a team's is that of
  the customers whose team is the team now — so a team's figure is not the sum of its members' rows;
- a period's target is the one set for it; a quarter or a year without one counts the targets set for its months
  (a year: its quarters, each its own target or its months');
- attainment = actual / target, the gap = target − actual (what is still to sell; negative once exceeded);
- last year: the same period a year earlier, growth = actual / last year − 1;
- run rate: Beijing days elapsed in the period (today counted) over its days; on pace when attainment is at least
  that share; projected = actual × days / days elapsed.

Everything is summed by the database, grouped by owner and by team: a fixed number of queries, whatever the number
of customers or months."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit, wording
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.ordering import pinyin_sorted
from pharmacrm.core.roles import Cap, Role
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk.performance import LOCAL, Period, current_period, parse_period, period_error  # noqa: F401

from .models import MonthlyRollup, SalesTarget, yuan
from .services import half_up

A = AuditEntry.Action
MAX_YUAN = Decimal(10) ** 12  # twelve digits before the decimal point: 999,999,999,999.99 yuan at most


# --- amounts -------------------------------------------------------------------------------------------


def amount_fen(raw) -> int | None:
    """A target as typed (1200000, 1,200,000.00, ¥1200000, １２０００００ from a Chinese input method) in fen; None for
    an empty cell. ValidationError with the reason otherwise (the caller names the cell or field)."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValidationError(_("not a number"))
    if isinstance(raw, (int, Decimal)):
        value = Decimal(raw)
    else:
        text = unicodedata.normalize("NFKC", str(raw)).strip()
        for junk in (",", "¥", "元", " ", "\u00a0"):
            text = text.replace(junk, "")
        if not text:
            return None
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
            raise ValidationError(_("not a number"))
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ValidationError(_("not a number")) from None
    if not value.is_finite():
        raise ValidationError(_("not a number"))
    if value < 0:
        raise ValidationError(_("a target cannot be negative"))
    if value >= MAX_YUAN:
        raise ValidationError(_("at most 12 digits before the decimal point"))
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError(_("at most two decimal places (fen)"))
    return int(value * 100)


# --- who sees what -------------------------------------------------------------------------------------


@dataclass
class Scope:
    """Every person and team (`everything`); the teams a team lead leads (`team_ids`: their members' rows and the
    teams' totals); or a rep's own row and their teams' totals (`own`, `own_team_ids`) — never a colleague's row."""

    everything: bool = False
    team_ids: list[int] | None = None
    own: User | None = None
    own_team_ids: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "all" if self.everything else "teams" if self.team_ids is not None else "own"


def scope_for(user) -> Scope:
    """Managers, administrators, analysts and auditors: everything; a team lead who may see purchases: the teams
    they lead; a sales rep: their own figures and their teams' totals. PermissionDenied for anyone else."""
    if access.can(user, Cap.VIEW_ALL_ATTAINMENT):
        return Scope(everything=True)
    if access.can(user, Cap.VIEW_PURCHASES):
        led = list(Team.objects.filter(lead=user).order_by("name").values_list("id", flat=True))
        if led:
            return Scope(team_ids=led)
        if Role.REP in access.roles_of(user):
            return Scope(own=user, own_team_ids=list(user.teams.values_list("id", flat=True)))
    raise PermissionDenied(
        _("Sales targets and attainment are for sales reps, their team leads and managers.")
    )


def may_see(user) -> bool:
    try:
        scope_for(user)
    except PermissionDenied:
        return False
    return True


def may_set(user) -> bool:
    return access.can(user, Cap.SET_SALES_TARGETS)


def targets_for(user, qs=None, scope: Scope | None = None):
    """The targets the user may read: every one, their teams' and their members' (a team lead), their own and their
    teams' (a rep)."""
    scope = scope or scope_for(user)
    qs = SalesTarget.objects.all() if qs is None else qs
    if scope.everything:
        return qs
    if scope.team_ids is not None:
        members = User.objects.filter(teams__in=scope.team_ids).values("pk")
        return qs.filter(Q(team_id__in=scope.team_ids) | Q(user_id__in=members) | Q(user=user))
    return qs.filter(Q(user=scope.own) | Q(team_id__in=scope.own_team_ids))


# --- a period's target -----------------------------------------------------------------------------------


def target_of(targets: dict[tuple[str, int], int], period: Period) -> int | None:
    """A subject's target for `period` from its targets of that year ({(kind, number): fen}): the one set for the
    period, else (a quarter) the sum of its months' or (a year) of its quarters'; None when none is set."""
    own = targets.get((period.kind, period.number))
    if own is not None or period.kind == "month":
        return own
    if period.kind == "quarter":
        parts = [targets.get(("month", m)) for m in range(3 * period.number - 2, 3 * period.number + 1)]
    else:
        parts = [target_of(targets, Period("quarter", period.year, q)) for q in range(1, 5)]
    given = [p for p in parts if p is not None]
    return sum(given) if given else None


# --- the report ----------------------------------------------------------------------------------------


def _pct(part: int, whole: int | None) -> Decimal | None:
    return half_up(Decimal(part) * 100 / whole, "0.1") if whole else None


@dataclass
class Row:
    key: str  # u<id> for a person, t<id> for a team, "total"
    label: str
    target_fen: int | None
    actual_fen: int
    last_year_fen: int
    days: int = 1
    elapsed: int = 0

    @property
    def target(self) -> Decimal | None:
        return None if self.target_fen is None else yuan(self.target_fen)

    @property
    def actual(self) -> Decimal:
        return yuan(self.actual_fen)

    @property
    def last_year(self) -> Decimal:
        return yuan(self.last_year_fen)

    @property
    def attainment_pct(self) -> Decimal | None:
        return _pct(self.actual_fen, self.target_fen)

    @property
    def gap(self) -> Decimal | None:
        return None if self.target_fen is None else yuan(self.target_fen - self.actual_fen)

    @property
    def growth_pct(self) -> Decimal | None:
        return _pct(self.actual_fen - self.last_year_fen, self.last_year_fen)

    @property
    def projected(self) -> Decimal | None:
        """The period's actual at this pace: what was sold in the days elapsed, over all its days."""
        if not self.elapsed:
            return None
        return yuan(round(Decimal(self.actual_fen) * self.days / self.elapsed))

    @property
    def on_pace(self) -> bool | None:
        """Attainment at least the share of the period elapsed; None without a target or before the period."""
        if not self.target_fen or not self.elapsed:
            return None
        return self.actual_fen * self.days >= self.target_fen * self.elapsed


@dataclass
class Report:
    period: Period
    scope: Scope
    today: dt.date
    days: int
    elapsed: int
    people: list[Row]
    teams: list[Row]
    people_total: Row
    teams_total: Row

    @property
    def elapsed_pct(self) -> Decimal:
        return half_up(Decimal(self.elapsed) * 100 / self.days, "0.1")

    @property
    def last_year(self) -> Period:
        return Period(self.period.kind, self.period.year - 1, self.period.number)


def _month(at: dt.datetime) -> dt.date:
    return at.date()


def _sums(group: str, period: Period, subject_filter: Q | None) -> dict[int, tuple[int, int]]:
    """{owner or team id: (actual, last year's)} in fen: one grouped query over the rollups of both periods."""
    start, end = _month(period.start), _month(period.end)
    before = Period(period.kind, period.year - 1, period.number)
    ly_start, ly_end = _month(before.start), _month(before.end)
    this, last = Q(month__gte=start, month__lt=end), Q(month__gte=ly_start, month__lt=ly_end)
    qs = MonthlyRollup.objects.filter(this | last, **{f"{group}__isnull": False})
    if subject_filter is not None:
        qs = qs.filter(subject_filter)
    rows = (
        qs.values(group)
        .annotate(now=Sum("amount_fen", filter=this), before=Sum("amount_fen", filter=last))
        .order_by()
    )
    return {r[group]: (int(r["now"] or 0), int(r["before"] or 0)) for r in rows if r["now"] or r["before"]}


def beijing_today(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(LOCAL).date()


def elapsed_days(period: Period, today: dt.date) -> tuple[int, int]:
    """(days of the period, days of it elapsed by `today` in Beijing, today included)."""
    start, end = _month(period.start), _month(period.end)
    days = (end - start).days
    return days, max(0, min(days, (today - start).days + 1))


def report(user, period: Period, *, today: dt.date | None = None) -> Report:
    """The attainment of `period` for the people and teams the user may see (scope_for), with both totals."""
    scope = scope_for(user)
    today = today or beijing_today()
    days, elapsed = elapsed_days(period, today)
    if scope.everything:
        person_q = team_q = None
        teams = pinyin_sorted(Team.objects.order_by("name"))
    elif scope.team_ids is not None:
        members = set(
            User.objects.filter(teams__in=scope.team_ids, is_active=True).values_list("pk", flat=True)
        )
        person_q = Q(institution__owner_id__in=members)
        team_q = Q(institution__team_id__in=scope.team_ids)
        teams = pinyin_sorted(Team.objects.filter(pk__in=scope.team_ids).order_by("name"))
    else:
        members = {user.pk}
        person_q = Q(institution__owner_id=user.pk)
        team_q = Q(institution__team_id__in=scope.own_team_ids)
        teams = pinyin_sorted(Team.objects.filter(pk__in=scope.own_team_ids).order_by("name"))
    by_owner = _sums("institution__owner_id", period, person_q)
    by_team = _sums("institution__team_id", period, team_q)
    wanted = (
        targets_for(user, scope=scope)
        .filter(year=period.year)
        .values_list("user_id", "team_id", "kind", "number", "amount_fen")
    )
    per_user: dict[int, dict] = {}
    per_team: dict[int, dict] = {}
    for user_id, team_id, kind, number, fen in wanted:
        (per_user.setdefault(user_id, {}) if user_id else per_team.setdefault(team_id, {}))[
            (kind, number)
        ] = fen
    user_targets = {pk: target_of(t, period) for pk, t in per_user.items()}
    team_targets = {pk: target_of(t, period) for pk, t in per_team.items()}
    if scope.everything:
        person_ids = set(by_owner) | {pk for pk, t in user_targets.items() if t is not None}
    else:
        person_ids = set(members)
        user_targets = {pk: t for pk, t in user_targets.items() if pk in members}
    names = {
        u.pk: u.display_name or u.username
        for u in User.objects.filter(pk__in=person_ids).only("pk", "username", "display_name")
    }
    people = [
        Row(f"u{pk}", names[pk], user_targets.get(pk), *by_owner.get(pk, (0, 0)), days=days, elapsed=elapsed)
        for pk in person_ids if pk in names
    ]  # fmt: skip
    people.sort(key=lambda r: (-(r.attainment_pct if r.attainment_pct is not None else Decimal(-1)), r.label))
    team_rows = [
        Row(f"t{t.pk}", t.shown_name, team_targets.get(t.pk), *by_team.get(t.pk, (0, 0)), days=days, elapsed=elapsed)
        for t in teams  # named in the reader's language
    ]
    if scope.everything:  # the teams with nothing to show (no target, no purchases either year) are left out
        team_rows = [r for r in team_rows if r.target_fen is not None or r.actual_fen or r.last_year_fen]

    def total(rows: list[Row]) -> Row:
        targets = [r.target_fen for r in rows if r.target_fen is not None]
        return Row("total", _("Total"), sum(targets) if targets else None, sum(r.actual_fen for r in rows),
                   sum(r.last_year_fen for r in rows), days=days, elapsed=elapsed)  # fmt: skip

    return Report(period, scope, today, days, elapsed, people, team_rows, total(people), total(team_rows))


# --- setting targets ------------------------------------------------------------------------------------


class CellConflict(ConflictError):
    """Targets changed by someone else since the grid was loaded: nothing was saved."""

    def __init__(self, labels: list[str], current_version: int = 0):
        super().__init__(current_version)
        self.labels = labels
        self.args = (
            _("Someone else changed these targets while you were editing them, so nothing was saved: %(cells)s. "
              "Reload the page and enter your changes again.") % {"cells": wording.listing(labels)},
        )  # fmt: skip

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class Change:
    subject: User | Team
    period: Period
    fen: int | None  # None: remove the target
    version: int | None = None  # the version loaded (0: there was none); None: not checked (an import)
    label: str = ""


def subject_label(subject) -> str:
    if isinstance(subject, Team):
        return subject.shown_name  # in the reader's language (a key account's service team)
    return subject.display_name or subject.username


def _filter(subject, period: Period) -> dict:
    key = {"year": period.year, "kind": period.kind, "number": period.number}
    key["team" if isinstance(subject, Team) else "user"] = subject
    return key


def _key(subject, period: Period) -> tuple:
    return ("t" if isinstance(subject, Team) else "u", subject.pk, period.kind, period.year, period.number)


def _check_subject(subject) -> None:
    if isinstance(subject, User) and not subject.is_active:
        raise ValidationError(
            {"rep": [_("%(name)s is no longer an active user.") % {"name": subject_label(subject)}]}
        )


def apply(user, changes: list[Change], *, source: str = "form") -> int:
    """Save targets (SET_SALES_TARGETS) in one transaction: each change audited; a change whose target was changed
    by someone else since `version` was read refuses them all (CellConflict naming the cells). Returns how many
    targets were created, changed or removed."""
    if not may_set(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    done, stale = 0, []
    now = timezone.now()
    with transaction.atomic():
        # the subjects' rows first: a cell without a target has no row to lock, so two managers entering the first
        # target of a cell at once would both create one (the second failing on the unique constraint)
        user_ids = sorted({c.subject.pk for c in changes if isinstance(c.subject, User)})
        team_ids = sorted({c.subject.pk for c in changes if isinstance(c.subject, Team)})
        list(User.objects.select_for_update().filter(pk__in=user_ids).values_list("pk", flat=True))
        list(Team.objects.select_for_update().filter(pk__in=team_ids).values_list("pk", flat=True))
        # the targets as they are now, read once (a grid of a hundred reps is 1,200 cells, not 1,200 queries)
        existing = {
            (("t", t.team_id) if t.team_id else ("u", t.user_id)) + (t.kind, t.year, t.number): t
            for t in SalesTarget.objects.select_for_update().filter(
                Q(user_id__in=user_ids) | Q(team_id__in=team_ids), year__in={c.period.year for c in changes}
            )
        }
        for change in changes:
            if change.fen is not None:
                _check_subject(change.subject)
            current = existing.get(_key(change.subject, change.period))
            before = current.amount_fen if current else None
            if before == change.fen:
                continue
            if change.version is not None and change.version != (current.version if current else 0):
                stale.append(change.label or f"{subject_label(change.subject)} {change.period.key}")
                continue
            what = {"period": change.period.key, "source": source}
            what["team" if isinstance(change.subject, Team) else "rep"] = (
                change.subject.name if isinstance(change.subject, Team) else change.subject.username
            )
            if current is None:
                created = SalesTarget.objects.create(
                    amount_fen=change.fen,
                    updated_by=user,
                    updated_at=now,
                    **_filter(change.subject, change.period),
                )
                existing[_key(change.subject, change.period)] = created
                audit.record(
                    A.CREATE, created, user=user, changes={"amount": [None, yuan(change.fen)]}, **what
                )
            elif change.fen is None:
                audit.record(A.DELETE, current, user=user, changes={"amount": [yuan(before), None]}, **what)
                current.delete()
                del existing[_key(change.subject, change.period)]
            else:
                current.amount_fen, current.updated_by, current.updated_at = change.fen, user, now
                current.version += 1
                current.save(update_fields=["amount_fen", "updated_by", "updated_at", "version"])
                audit.record(
                    A.UPDATE, current, user=user, changes={"amount": [yuan(before), yuan(change.fen)]}, **what
                )
            done += 1
        if stale:
            raise CellConflict(stale)
    return done


# --- the grid (people × months of a year) --------------------------------------------------------------


def grid_subjects(year: int) -> tuple[list[User], list[Team]]:
    """The grid's rows: active sales reps, and anyone else who has a target that year or owns customers; then every
    team."""
    from pharmacrm.customers.models import Institution

    with_targets = SalesTarget.objects.filter(year=year, user__isnull=False).values("user_id")
    owners = Institution.objects.filter(owner__isnull=False).values("owner_id")
    people = list(
        User.objects.filter(is_active=True)
        .filter(Q(groups__name=Role.REP.value) | Q(pk__in=with_targets) | Q(pk__in=owners))
        .distinct().order_by("username")
    )  # fmt: skip
    return people, pinyin_sorted(Team.objects.order_by("name"))


def grid_values(year: int) -> dict[tuple[str, int], SalesTarget]:
    """{(u<id> or t<id>, month): target} of the monthly targets of `year`."""
    out = {}
    for t in SalesTarget.objects.filter(year=year, kind="month"):
        out[(f"u{t.user_id}" if t.user_id else f"t{t.team_id}", t.number)] = t
    return out


MONTH_HEADER = re.compile(
    r"^(?:(\d{4})\s*[-/.年]\s*)?0?(\d{1,2})\s*(?:月份?)?(?:[-/.]\d{1,2})?(?:\s00:00:00)?$"
)
CHINESE_MONTHS = (
    "一月",
    "二月",
    "三月",
    "四月",
    "五月",
    "六月",
    "七月",
    "八月",
    "九月",
    "十月",
    "十一月",
    "十二月",
)
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def month_of_header(text: str, year: int) -> int | None:
    """The month a grid column's header names (1月, 一月, 2026-01, 01, Jan, an Excel date 2026-01-01); None for
    something else. ValidationError for another year's month."""
    text = unicodedata.normalize("NFKC", text or "").strip().lower()
    if not text:
        return None
    if text.rstrip("份") in CHINESE_MONTHS:
        return CHINESE_MONTHS.index(text.rstrip("份")) + 1
    if text[:3] in MONTH_NAMES and text.isalpha():
        return MONTH_NAMES.index(text[:3]) + 1
    m = MONTH_HEADER.match(text)
    if not m or not 1 <= int(m.group(2)) <= 12:
        return None
    if m.group(1) and int(m.group(1)) != year:
        raise ValidationError(
            _("a month of %(other)s, not of %(year)s") % {"other": m.group(1), "year": year}
        )
    return int(m.group(2))


def column_letter(index: int) -> str:
    from pharmacrm.customers.importer import column_letter as letter

    return letter(index)


IMPORT_MAX_BYTES = 5 * 1024 * 1024  # a grid of a few hundred reps is a few tens of kB
MAX_ERRORS = 50


class GridRefused(ValidationError):
    """An import refused as a whole: the file (one message), or its cells ([row, column, message] each)."""


def _find_subject(
    name: str, teams: dict[str, Team], by_username: dict[str, User], by_display: dict[str, list[User]]
):
    name = unicodedata.normalize("NFKC", name).strip()
    if name in teams:
        return teams[name]
    if name.lower() in by_username:
        return by_username[name.lower()]
    found = by_display.get(name, [])
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValidationError(_("several users are called so: give the user name"))
    raise ValidationError(_("no such active user or team"))


def read_grid(path, year: int) -> list[Change]:
    """The changes a grid file gives (first column: a team's name, a user name or a display name; then a column per
    month). Empty cells change nothing. GridRefused naming the row, the column and the reason of each bad cell."""
    from pharmacrm.customers import importer

    info = importer.sniff(path)  # type, encoding, broken or encrypted workbook: refused with the reason
    try:
        sheet = importer.Sheet(path, info)
        try:
            rows = list(sheet.rows())
        finally:
            sheet.close()
    except ValidationError:
        raise
    except UnicodeDecodeError:
        raise GridRefused(
            _("The CSV file is not valid UTF-8 or GB18030 text: save it as CSV (UTF-8) and upload it again.")
        ) from None
    except importer.UnreadableRow as e:
        raise GridRefused(importer.message(*e.note())) from None
    except Exception:  # calamine's own errors for a damaged workbook
        raise GridRefused(
            _("The file could not be read: it is damaged or not a real CSV or XLSX file.")
        ) from None
    rows = [(n, cells) for n, cells in rows if any(str(c).strip() for c in cells)]
    if not rows:
        raise GridRefused(_("The file is empty."))
    head_number, header = rows[0]
    errors: list[tuple[int, str, str]] = []
    months: dict[int, int] = {}
    for index, cell in enumerate(header[1:], start=1):
        try:
            month = month_of_header(str(cell), year)
        except ValidationError as e:
            errors.append((head_number, column_letter(index), " ".join(e.messages)))
            continue
        if month is None:
            if str(cell).strip():
                errors.append(
                    (
                        head_number,
                        column_letter(index),
                        _("not a month (1月 … 12月, or %(year)s-01 …)") % {"year": year},
                    )
                )
            continue
        if month in months.values():
            errors.append((head_number, column_letter(index), _("this month has a column already")))
            continue
        months[index] = month
    if not months and not errors:
        raise GridRefused(_("The header row names no month: put the people or teams in the first column and a "
                            "column per month (1月 … 12月)."))  # fmt: skip
    teams = {t.name: t for t in Team.objects.all()}
    for team in [t for t in teams.values() if t.generated]:
        # a key account's service team as the grid's export wrote it, in the exporting user's language
        for language, _n in settings.LANGUAGES:
            with translation.override(language):
                teams.setdefault(unicodedata.normalize("NFKC", team.shown_name).strip(), team)
    active = list(User.objects.filter(is_active=True))
    by_username = {u.username.lower(): u for u in active}
    by_display: dict[str, list[User]] = {}
    for u in active:
        if u.display_name:
            by_display.setdefault(u.display_name, []).append(u)
    changes: list[Change] = []
    seen: dict[tuple[str, int], int] = {}
    for number, cells in rows[1:]:
        name = str(cells[0]) if cells else ""
        try:
            subject = _find_subject(name, teams, by_username, by_display)
        except ValidationError as e:
            errors.append(
                (
                    number,
                    "A",
                    _("%(cell)s: %(reason)s") % {"cell": name.strip() or "—", "reason": " ".join(e.messages)},
                )
            )
            continue
        key = f"{'t' if isinstance(subject, Team) else 'u'}{subject.pk}"
        for index, month in months.items():
            raw = str(cells[index]) if index < len(cells) else ""
            try:
                fen = amount_fen(raw)
            except ValidationError as e:
                errors.append(
                    (
                        number,
                        column_letter(index),
                        _("%(cell)s: %(reason)s") % {"cell": raw.strip(), "reason": " ".join(e.messages)},
                    )
                )
                continue
            if fen is None:
                continue
            if (key, month) in seen:
                errors.append(
                    (
                        number,
                        column_letter(index),
                        _("row %(row)s sets this target already") % {"row": seen[(key, month)]},
                    )
                )
                continue
            seen[(key, month)] = number
            changes.append(
                Change(
                    subject,
                    Period("month", year, month),
                    fen,
                    None,
                    f"{subject_label(subject)} {year}-{month:02d}",
                )
            )
    if errors:
        raise GridRefused(
            [
                _("Row %(row)s, column %(column)s: %(reason)s") % {"row": r, "column": c, "reason": m}
                for r, c, m in errors[:MAX_ERRORS]
            ]
            + (
                [_("… and %(count)s more.") % {"count": len(errors) - MAX_ERRORS}]
                if len(errors) > MAX_ERRORS
                else []
            )
        )
    return changes


def import_grid(user, upload, year: int) -> int:
    """A grid file uploaded (CSV or XLSX, at most IMPORT_MAX_BYTES): every target saved, or none (GridRefused with the
    reasons). Returns how many targets changed."""
    import tempfile
    from pathlib import Path

    from pharmacrm.customers import importer

    if not may_set(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    if upload is None:
        raise GridRefused(_("Choose a file."))
    suffix = Path(upload.name or "").suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise GridRefused(_("Only .csv and .xlsx files can be imported."))
    if upload.size is not None and upload.size > IMPORT_MAX_BYTES:
        raise GridRefused(_("The file is too large (%(size)s MB); the limit is %(limit)s MB.")
                          % {"size": f"{upload.size / 1048576:.1f}", "limit": f"{IMPORT_MAX_BYTES / 1048576:g}"})  # fmt: skip
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=importer.imports_dir()) as fh:
        size = 0
        for block in upload.chunks():
            size += len(block)
            digest.update(block)
            if size > IMPORT_MAX_BYTES:
                raise GridRefused(_("The file is too large (%(size)s MB); the limit is %(limit)s MB.")
                                  % {"size": f"{size / 1048576:.1f}", "limit": f"{IMPORT_MAX_BYTES / 1048576:g}"})  # fmt: skip
            fh.write(block)
        fh.flush()
        changes = read_grid(Path(fh.name), year)
    with transaction.atomic():
        done = apply(user, changes, source="import")
        audit.record(A.IMPORT, ("sales.salestarget", "", f"{year}"), user=user, target="sales targets", year=year,
                     file=upload.name, sha256=digest.hexdigest(), cells=len(changes), changed=done)  # fmt: skip
    return done


def parse_year(raw, default: int) -> int:
    raw = (str(raw or "")).strip()
    if not raw:
        return default
    if raw.isascii() and raw.isdigit() and 2000 <= int(raw) <= 2999:
        return int(raw)
    raise ValidationError({"year": [_("Give a year (2026).")]})
