"""Cooperation agreements and projects: who sees and runs what, numbering, validation, transitions (each audited,
edits under an optimistic lock), the signed copy and acceptance files, and the worker's reminders. The pages and
the API call only this module (docs/cooperation.md)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, amendments, audit, personal, uploads
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Counter, Team, User
from pharmacrm.core.numbers import AMOUNT_MARKS, PERCENT_MARKS, percent_text, typed_decimal
from pharmacrm.core.roles import READ_ONLY_ROLES, Cap
from pharmacrm.core.typed_dates import typed_date
from pharmacrm.customers.normalise import clean_text, visible
from pharmacrm.customers.services import ConflictError
from pharmacrm.keyaccounts import services as ka

from .models import (
    Acceptance,
    AcceptanceResult,
    Agreement,
    AgreementAmendment,
    AgreementStatus,
    AgreementType,
    Check,
    Payment,
    Project,
    ProjectStatus,
    SettlementStatus,
    Task,
    TaskStatus,
)

A = AuditEntry.Action
log = logging.getLogger(__name__)
MAX_AMOUNT = Decimal("999999999999.99")
OPEN_PROJECT = (ProjectStatus.PLANNING, ProjectStatus.RUNNING)
# the terms a signature fixes: once signed, only who looks after the agreement may change
AGREEMENT_FIELDS = ("institution", "kind", "title", "company_signer", "customer_signer", "start_date", "end_date",
                    "amount", "terms", "payment_terms", "owner", "team")  # fmt: skip
AFTER_SIGNING = ("owner", "team")
PROJECT_FIELDS = ("title", "goal", "responsible", "start_date", "end_date", "budget")
# free text a reader who sees personal data masked is shown masked (personal.FREE_TEXT_OF): an edit by such a user puts
# each mask still in it back as stored
AGREEMENT_TEXTS = personal.FREE_TEXT_OF["cooperation.agreement"]
PROJECT_TEXTS = personal.FREE_TEXT_OF["cooperation.project"]


# --- who sees and runs what ----------------------------------------------------------------------------------


def _team_ids(user) -> list[int]:
    """The user's teams: those they are in, and those they lead — a team's lead need not be one of its members (a
    manager leading a sales team), and must still open its agreements."""
    member = User.teams.through.objects.filter(user_id=user.pk).values_list("team_id", flat=True)
    return sorted({*member, *Team.objects.filter(lead_id=user.pk).values_list("pk", flat=True)})


def agreements_for(user, qs=None):
    """The agreements the user may see: all of them for leadership, analysts and auditors; otherwise those they or
    their teams look after, and those of the customers they or their teams own (seed 002 §三.(三).3)."""
    qs = Agreement.objects.all() if qs is None else qs
    if not access.can(user, Cap.READ_COOPERATION):
        return qs.none()
    if access.can(user, Cap.ALL_COOPERATION):
        return qs
    teams = _team_ids(user)
    return qs.filter(Q(owner=user) | Q(team_id__in=teams) | Q(institution__owner=user)
                     | Q(institution__team_id__in=teams) | Q(projects__responsible=user)).distinct()  # fmt: skip


def projects_for(user, qs=None):
    qs = Project.objects.all() if qs is None else qs
    if not access.can(user, Cap.READ_COOPERATION):
        return qs.none()
    if access.can(user, Cap.ALL_COOPERATION):
        return qs
    # a task's owner too: anyone who runs cooperation projects may be given a task (_user), and must then find it in
    # their tasks, open its project and report its progress (the overdue alert links there)
    return qs.filter(Q(agreement__in=agreements_for(user).values("id")) | Q(responsible=user)
                     | Q(pk__in=Task.objects.filter(owner=user).values("project_id")))


def may_manage(user, agreement: Agreement) -> bool:
    return access.can(user, Cap.MANAGE_COOPERATION) and agreements_for(user).filter(pk=agreement.pk).exists()


def require_manage(user, agreement: Agreement) -> None:
    if not may_manage(user, agreement):
        raise PermissionDenied(_("You do not have permission to do this."))


def _check_version(obj, version) -> None:
    # a garbled version (not a number) is as stale as an old one
    if version is not None and (not is_id(version) or int(version) != obj.version):
        raise ConflictError(obj.version)


def _save_versioned(obj, fields: list[str], expected: int) -> None:
    """Write `fields` only if nobody changed the row since `expected` (optimistic lock)."""
    values = {f: getattr(obj, f) for f in fields}
    if not type(obj).objects.filter(pk=obj.pk, version=expected).update(version=expected + 1, **values):
        raise ConflictError(type(obj).objects.filter(pk=obj.pk).values_list("version", flat=True).first())
    obj.version = expected + 1


def _plain(value):
    if hasattr(value, "pk"):
        return value.pk
    return value


# --- validation ------------------------------------------------------------------------------------------------


def _amount(errors: dict, field: str, value, *, required: bool = False, positive: bool = False):
    if value in (None, ""):
        if required:
            errors[field] = [_("Give the amount.")]
        return None
    # as the sales forms read it (sales.targets.amount_fen): ￥1,234.50 and 1,234.50元 from a Chinese input method,
    # full-width digits and points (１２３４．５０) — refused here, while 1_000 or Arabic-Indic ١٢ were stored as numbers
    amount = typed_decimal(value, *AMOUNT_MARKS)
    if amount is None:
        errors[field] = [_("Give the amount in yuan, e.g. 12000.00.")]
        return None
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        errors[field] = [_("Give the amount in yuan with at most two decimals.")]
    elif amount < 0 or (positive and amount == 0):
        errors[field] = [_("The amount must be more than zero.") if positive else _("The amount cannot be negative.")]
    elif amount > MAX_AMOUNT:
        errors[field] = [_("The amount is too large.")]
    else:
        return amount.quantize(Decimal("0.01"))
    return None


def _date(errors: dict, field: str, value, *, required: bool = True, not_future: bool = False):
    if value in (None, ""):
        if required:
            errors[field] = [_("Give the date.")]
        return None
    if isinstance(value, str):
        try:  # as the API reads a day: 2026/3/15, 2026年3月15日, full-width digits too
            value = dt.date.fromisoformat(typed_date(value) or value.strip())
        except ValueError:
            errors[field] = [_("Give the date as YYYY-MM-DD.")]
            return None
    if not isinstance(value, dt.date):
        errors[field] = [_("Give the date as YYYY-MM-DD.")]
        return None
    if not_future and value > timezone.localdate():
        errors[field] = [_("The date cannot be in the future.")]
    return value


def _progress(value) -> int | None:
    """A progress in percent as typed: 50, 50%, ５０％ (an input method's full-width mode); None unless a whole
    number from 0 to 100 (int() read Arabic-Indic ٥٠ and refused 50%)."""
    if isinstance(value, bool) or value is None:
        return None
    number = Decimal(value) if isinstance(value, int) else typed_decimal(value, *PERCENT_MARKS)
    if number is None or number != number.to_integral_value() or not 0 <= number <= 100:
        return None
    return int(number)


def _text(errors: dict, field: str, value, limit: int, *, required: bool = False) -> str:
    # as the customer forms store text (customers.normalise): a name or title (a line, at most 500 characters) with
    # its spaces collapsed and full-width letters and digits made ASCII; every text without the zero-width
    # characters pasted along from WeChat, which made 华海\u200b药业 another company than 华海药业 and hid a title from search
    text = (value or "") if isinstance(value, str) else ("" if value is None else str(value))
    text = clean_text(text) if limit <= 500 else visible(text).strip()
    if required and not text:
        errors[field] = [_("This field is required.")]
    elif len(text) > limit:
        errors[field] = [_("At most %(n)d characters.") % {"n": limit}]
    return text


def _term(errors: dict, data: dict) -> None:
    start, end = data.get("start_date"), data.get("end_date")
    if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
        errors["end_date"] = [_("The end cannot lie before the start (%(date)s).") % {"date": start.isoformat()}]


def _user(errors: dict, field: str, value, *, required: bool = True):
    if value in (None, ""):
        if required:
            errors[field] = [_("Name the responsible person.")]
        return None
    user = value if isinstance(value, User) else User.objects.filter(pk=value).first() if is_id(value) else None
    if user is None or not user.is_active:
        errors[field] = [_("No such active user.")]
        return None
    if not access.can(user, Cap.MANAGE_COOPERATION):  # they could not open what they are asked to look after
        errors[field] = [_("%(name)s does not run cooperation projects: choose someone who does.") % {"name": user}]
        return None
    return user


def clean_agreement(user, data: dict, *, current: Agreement | None = None) -> dict:
    errors: dict = {}
    out = {}
    if current is None or current.status == AgreementStatus.DRAFT:
        institution = data.get("institution")
        if institution in (None, ""):
            errors["institution"] = [_("Choose the customer.")]
        else:
            pk = getattr(institution, "pk", institution)
            institution = access.institutions_for(user).filter(pk=pk if is_id(pk) else None).first()
            if institution is None:
                errors["institution"] = [_("No such customer, or one you may not see.")]
        out["institution"] = institution
        kind = data.get("kind") or ""
        if kind not in AgreementType.values:
            errors["kind"] = [_("Choose the type of cooperation.")]
        out["kind"] = kind
        out["title"] = _text(errors, "title", data.get("title"), 200, required=True)
        out["company_signer"] = _text(errors, "company_signer", data.get("company_signer"), 100, required=True)
        out["customer_signer"] = _text(errors, "customer_signer", data.get("customer_signer"), 100)
        out["start_date"] = _date(errors, "start_date", data.get("start_date"))
        out["end_date"] = _date(errors, "end_date", data.get("end_date"))
        _term(errors, out)
        out["amount"] = _amount(errors, "amount", data.get("amount"))
        out["terms"] = _text(errors, "terms", data.get("terms"), 20000)
        out["payment_terms"] = _text(errors, "payment_terms", data.get("payment_terms"), 5000)
    else:
        for field in AGREEMENT_FIELDS:
            if field in data and field not in AFTER_SIGNING and _plain(data[field]) not in (
                _plain(getattr(current, field)), str(_plain(getattr(current, field)))
            ) and not (isinstance(getattr(current, field), (dt.date, Decimal)) and str(data[field]) == str(getattr(current, field))):
                errors[field] = [_("A signed agreement's term changes by an amendment: record one with the new term "
                                   "and the reason.") if field in ("start_date", "end_date") else
                                 _("A signed agreement's terms cannot change: terminate it and record a new one.")]  # fmt: skip
    out["owner"] = _user(errors, "owner", data.get("owner") or (current.owner if current else user))
    team = data.get("team")
    if team in (None, ""):
        out["team"] = None
    else:
        out["team"] = Team.objects.filter(pk=getattr(team, "pk", team) if is_id(getattr(team, "pk", team)) else None).first()
        if out["team"] is None:
            errors["team"] = [_("No such team.")]
    if current is None and not access.can(user, Cap.ALL_COOPERATION):
        _check_first_hands(user, out, errors)
    if current is not None and not may_reassign(user, current):
        if out["owner"] is not None and out["owner"].pk != current.owner_id:
            errors["owner"] = [_("Only leadership or the team's lead may hand this agreement to another owner.")]
        if "team" not in errors and (out["team"].pk if out["team"] else None) != current.team_id:
            errors["team"] = [_("Only leadership or the team's lead may hand this agreement to another team.")]
    if errors:
        raise ValidationError(errors)
    return out


def _check_first_hands(user, out: dict, errors: dict) -> None:
    """Recording an agreement, the rule of handing one on (may_reassign) applies to its first hands: someone who does
    not lead may record it only as their own, in one of their teams (or none); the lead of the chosen team may give it
    to anyone. Otherwise a rep could record an agreement straight into another owner's or team's hands."""
    team = out.get("team")
    if "team" not in errors and team is not None and team.pk not in _team_ids(user):
        errors["team"] = [_("Only leadership or that team's lead may record an agreement for a team you are not in: "
                            "choose one of your teams.")]  # fmt: skip
    leads = team is not None and team.lead_id == user.pk
    if out.get("owner") is not None and out["owner"].pk != user.pk and not leads:
        errors["owner"] = [_("Only leadership or the team's lead may record an agreement for another owner: choose "
                             "yourself.")]  # fmt: skip


def may_reassign(user, agreement: Agreement) -> bool:
    """Who may hand an agreement to another owner or team: leadership (cooperation.all) or its team's lead — not
    anyone else who manages it, or it could leave its team's hands."""
    if access.can(user, Cap.ALL_COOPERATION):
        return True
    return bool(agreement.team_id) and Team.objects.filter(pk=agreement.team_id, lead=user).exists()


# --- agreements ---------------------------------------------------------------------------------------------


def _number(at: dt.datetime | None = None) -> str:
    """HZ-YYYY-NNNN, per Beijing year, in the caller's transaction: a creation rolled back gives its number back,
    so the numbers have no gaps; two creations at once get two numbers (core.models.Counter)."""
    year = timezone.localtime(at or timezone.now()).year
    return f"HZ-{year}-{Counter.allocate(f'cooperation:HZ:{year}'):04d}"


def create_agreement(user, data: dict) -> Agreement:
    access.require(user, Cap.MANAGE_COOPERATION)
    values = clean_agreement(user, data)
    with transaction.atomic():
        agreement = Agreement(number=_number(), created_by=user, **values)
        agreement.save()
        audit.record(A.CREATE, agreement, user=user, changes={
            k: [None, _plain(v)] for k, v in {"number": agreement.number, **values}.items() if v not in (None, "")})
    if agreement.owner_id != user.pk:
        _notify([agreement.owner], "cooperation.assigned",
                Message(gettext_lazy("Cooperation agreement %(number)s is yours to look after"), number=agreement.number),
                agreement.title, reverse("cooperation:agreement", args=[agreement.pk]), agreement)  # fmt: skip
    return agreement


def update_agreement(user, agreement: Agreement, data: dict, version) -> Agreement:
    require_manage(user, agreement)
    _check_version(agreement, version)
    if agreement.status in (AgreementStatus.EXPIRED, AgreementStatus.TERMINATED):
        raise ValidationError({"status": [_("This agreement has ended; it stays archived as it is.")]})
    data = personal.restore_free_text(user, data, agreement, AGREEMENT_TEXTS)
    values = clean_agreement(user, {**{f: getattr(agreement, f) for f in AGREEMENT_FIELDS}, **data}, current=agreement)
    changes = {k: [_plain(getattr(agreement, k)), _plain(v)] for k, v in values.items() if getattr(agreement, k) != v}
    if not changes:
        return agreement
    with transaction.atomic():
        for k, v in values.items():
            setattr(agreement, k, v)
        _save_versioned(agreement, list(values), int(version if version is not None else agreement.version))
        audit.record(A.UPDATE, agreement, user=user, changes=changes)
    return agreement


def _transition(user, agreement: Agreement, version, allowed: tuple, new: str, **fields) -> Agreement:
    require_manage(user, agreement)
    _check_version(agreement, version)
    if agreement.status not in allowed:
        raise ValidationError({"status": [_("An agreement that is %(status)s cannot become %(new)s.") % {
            "status": agreement.get_status_display(), "new": AgreementStatus(new).label}]})  # fmt: skip
    with transaction.atomic():
        old = agreement.status
        agreement.status = new
        for k, v in fields.items():
            setattr(agreement, k, v)
        _save_versioned(agreement, ["status", *fields], int(version if version is not None else agreement.version))
        audit.record(A.UPDATE, agreement, user=user, changes={"status": [old, new]})
    return agreement


def put_in_force(user, agreement: Agreement, version=None) -> Agreement:
    if agreement.status == AgreementStatus.SIGNED and agreement.end_date < timezone.localdate():
        raise ValidationError({"status": [_("The agreement's term ended on %(date)s.") % {
            "date": agreement.end_date.isoformat()}]})  # fmt: skip
    return _transition(user, agreement, version, (AgreementStatus.SIGNED,), AgreementStatus.IN_FORCE)


def terminate(user, agreement: Agreement, version=None, *, confirm_lapse: bool = True) -> Agreement:
    """The agreement ends before its term: an amendment of its term still waiting for its day lapses with it, never
    applied (amendments.lapse; one whose day has come took effect and is applied first), in the same transaction.
    `confirm_lapse` False (the API without `confirm_lapse: true`; the page says so beside its button): refused when one
    would lapse (amendments.LapseNotConfirmed, listing them), nothing written."""
    if agreement.projects.filter(status__in=[*OPEN_PROJECT, ProjectStatus.ACCEPTED]).exists():
        raise ValidationError({"status": [_("Close or settle the agreement's projects first.")]})
    with transaction.atomic():
        # under the agreement's lock, as the worker applies an amendment under it (sweep)
        Agreement.objects.select_for_update().filter(pk=agreement.pk).first()
        before = agreement.status
        if not confirm_lapse and before in COOPERATION_TERMS.amendable_statuses:
            require_manage(user, agreement)
            _check_version(agreement, version)  # a stale page first: 409, as without the amendment
            lapsing = amendments.lapsing(agreement)  # read under the lock: one recorded meanwhile is counted
            if lapsing:
                raise amendments.LapseNotConfirmed(lapsing)
        _transition(user, agreement, version, (AgreementStatus.DRAFT, AgreementStatus.SIGNED,
                                               AgreementStatus.IN_FORCE), AgreementStatus.TERMINATED)  # fmt: skip
        if before in COOPERATION_TERMS.amendable_statuses:
            agreement.status = before  # read as it was until now: an amendment whose day has come is applied first
            amendments.lapse(agreement, COOPERATION_TERMS, amendments.LapseCause.TERMINATED, user=user)
            agreement.status = AgreementStatus.TERMINATED
            Agreement.objects.filter(pk=agreement.pk).update(status=AgreementStatus.TERMINATED)
    return agreement


def files_dir() -> Path:
    path = Path(settings.VAR_DIR) / "cooperation"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _store(field: str, upload, stem: str) -> tuple[Path, str, str]:
    """Check and keep an uploaded PDF, PNG or JPEG in var/cooperation/ (core.uploads.keep_scan: the key-account
    signed copy's rules); (path, download name, SHA-256). The caller deletes the file when its transaction fails."""
    if upload is None:
        raise ValidationError({field: [_("Upload the signed copy.") if field == "signed_copy" else
                                       _("Upload the file.")]})  # fmt: skip
    return uploads.keep_scan(field, upload, files_dir(), stem)


def record_signed(user, agreement: Agreement, *, signed_date, upload, version=None) -> Agreement:
    """The signing: its date and the signed copy (a better scan of a signed agreement replaces the copy; the
    old one stays in var/cooperation/, named by the audit entry)."""
    require_manage(user, agreement)
    _check_version(agreement, version)
    errors: dict = {}
    if agreement.status not in (AgreementStatus.DRAFT, AgreementStatus.SIGNED, AgreementStatus.IN_FORCE):
        errors["status"] = [_("This agreement has ended; it stays archived as it is.")]
    signed_date = _date(errors, "signed_date", signed_date, not_future=True)
    if upload is None:
        errors["signed_copy"] = [_("Upload the signed copy.")]
    if errors:
        raise ValidationError(errors)
    path, name, sha = _store("signed_copy", upload, agreement.number)
    try:
        with transaction.atomic():
            old = {"status": agreement.status, "signed_date": agreement.signed_date, "file": agreement.signed_copy}
            if agreement.status == AgreementStatus.DRAFT:
                agreement.status = AgreementStatus.SIGNED
            agreement.signed_date = signed_date
            agreement.signed_copy, agreement.signed_copy_name, agreement.signed_copy_sha256 = path.name, name, sha
            _save_versioned(agreement, ["status", "signed_date", "signed_copy", "signed_copy_name",
                                        "signed_copy_sha256"], agreement.version)  # fmt: skip
            audit.record(A.UPDATE, agreement, user=user, changes={
                "status": [old["status"], agreement.status], "signed_date": [old["signed_date"], signed_date],
                "signed_copy": [old["file"] or None, path.name]}, sha256=sha)  # fmt: skip
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return agreement


# --- amendments of the term (补充协议) ---------------------------------------------------------------------------


class CooperationTerms(amendments.Terms):
    """Amendments of a signed or in-force cooperation agreement's term (core/amendments.py), by those who manage it: the
    end not before the start, the start not after a project's; a renewal reminder sent for the end before goes out again
    before the new end (`sweep`); the amendment's PDF is made from its record when downloaded, as the agreement's."""

    amendment_model = AgreementAmendment
    # expired (run out, not terminated): an amendment extends it (core/amendments.clean) and it is in force again
    amendable_statuses = (AgreementStatus.SIGNED, AgreementStatus.IN_FORCE, AgreementStatus.EXPIRED)
    title_zh, title_en = "合作协议", "Cooperation Agreement"

    def check_version(self, agreement, version) -> None:
        _check_version(agreement, version)

    def stale(self, current_version):
        return ConflictError(current_version)

    def not_amendable(self, agreement) -> str | None:
        if agreement.status == AgreementStatus.DRAFT:
            return amendments.not_signed_message()
        if agreement.status == AgreementStatus.TERMINATED:
            ended = (AuditEntry.objects.filter(object_type="cooperation.agreement", object_id=str(agreement.pk),
                                               changes__status__1=AgreementStatus.TERMINATED)
                     .order_by("-seq").values_list("at", flat=True).first())  # fmt: skip
            if ended is not None:
                return _("This agreement was terminated on %(date)s: it stays archived as it is.") % {
                    "date": timezone.localtime(ended).date().isoformat()}  # fmt: skip
            return _("This agreement was terminated: it stays archived as it is.")
        if agreement.status not in self.amendable_statuses:
            return _("This agreement has ended; it stays archived as it is.")
        return None

    def term_errors(self, agreement, start, end) -> dict:
        errors: dict = {}
        _term(errors, {"start_date": start, "end_date": end})
        early = agreement.projects.filter(start_date__lt=start).order_by("start_date", "id").first()
        if early is not None:
            errors["start_date"] = [_("Project “%(title)s” starts on %(date)s: the agreement cannot start after its "
                                      "projects.") % {"title": early.title, "date": early.start_date.isoformat()}]  # fmt: skip
        return errors

    def follow_end(self, user, agreement, previous):
        fields = []
        changes = amendments.rearm_reminder(agreement, agreement.end_date)
        if changes:
            fields += ["renewal_notified_at", "renewal_notified_for"]
        if agreement.status == AgreementStatus.EXPIRED and agreement.end_date >= timezone.localdate():
            # an expired agreement extended: in force again (only one in force expires)
            changes["status"] = [agreement.status, AgreementStatus.IN_FORCE]
            agreement.status = AgreementStatus.IN_FORCE
            fields.append("status")
        return fields, changes

    def schedule(self, agreement, amendment):
        # the renewal reminder follows the end the amendment sets from now on (amendments.reminded_end, `sweep`): one
        # sent for the end in force goes out again for the new one when the end moves
        changes = amendments.rearm_reminder(agreement, amendment.end_date)
        return (["renewal_notified_at", "renewal_notified_for"], changes) if changes else ([], {})

    def files_dir(self) -> Path:
        return files_dir()

    def parties(self, agreement):
        inst = agreement.institution
        return ("乙方（合作方）Party B (partner)",
                {"name": inst.name, "credit_code": inst.credit_code, "address": inst.address},
                [["法定代表人 Legal representative", "", inst.legal_representative or ""],
                 ["签约代表 Signatory", agreement.company_signer, agreement.customer_signer]])  # fmt: skip


COOPERATION_TERMS = CooperationTerms()


def amend_term(user, agreement: Agreement, data: dict, version=None) -> AgreementAmendment:
    """Record an amendment (补充协议) of a signed agreement's term: start_date, end_date, effective_date, reason and an
    optional signed_copy in `data` (core/amendments.record). The agreement's term becomes the new one; its text (PDF)
    keeps the term it was signed with."""
    return amendments.record(user, agreement, COOPERATION_TERMS, data, version=version)


def attach_amendment_copy(user, amendment: AgreementAmendment, upload) -> AgreementAmendment:
    """The signed copy of an amendment recorded without one, uploaded later; once only (core/amendments.attach_signed_copy)."""
    return amendments.attach_signed_copy(user, amendment, COOPERATION_TERMS, upload)


def amendment_text(amendment: AgreementAmendment) -> bytes:
    """The amendment's bilingual PDF, made from its record."""
    return amendments.render(amendment, COOPERATION_TERMS)


def kept_file(name: str) -> bytes:
    return (files_dir() / Path(name).name).read_bytes()


# what _store writes: HZ-2026-0001-<uuid>.pdf (a signed copy), acceptance-<project id>-<uuid>.png (an acceptance's);
# an amendment's signed copy (amend_term): HZ-2026-0001-amendment-<uuid>.pdf
KEPT_FILE = re.compile(r"(?:HZ-\d{4}-\d+(?:-amendment)?|acceptance-\d+)-[0-9a-f]{32}\.(?:pdf|png|jpg)")
ORPHAN_AGE = dt.timedelta(days=1)


def sweep_orphaned_files(now: dt.datetime | None = None) -> int:
    """The worker: delete the signed copies and acceptance files that nothing names, once a day old. The file is
    written before the transaction that records it; a process killed in between (or a database that failed at the
    commit) left it behind for ever. Named means an agreement's signed copy, an acceptance's file, an amendment's
    signed copy, or a replaced signed copy an audit entry of an agreement names (those stay archived). A younger file may be an upload still
    under way. Logged, and one audit entry per sweep that deleted something, with the count and the names."""
    cutoff = ((now or timezone.now()) - ORPHAN_AGE).timestamp()
    folder = files_dir()
    old = []
    for path in folder.iterdir():
        try:
            if KEPT_FILE.fullmatch(path.name) and path.is_file() and path.stat().st_mtime < cutoff:
                old.append(path)
        except FileNotFoundError:  # deleted meanwhile
            continue
    if not old:
        return 0
    # read after the listing: a file recorded meanwhile is named here
    named = {Path(n).name for n in Agreement.objects.exclude(signed_copy="").values_list("signed_copy", flat=True)}
    named |= {Path(n).name for n in Acceptance.objects.exclude(attachment="").values_list("attachment", flat=True)}
    named |= {Path(n).name for n in AgreementAmendment.objects.exclude(signed_copy="").values_list("signed_copy", flat=True)}
    history = AuditEntry.objects.filter(object_type__in=("cooperation.agreement", "cooperation.acceptance"))
    for changes, extra in history.values_list("changes", "extra").iterator():
        named.update(ka._file_names(changes, KEPT_FILE), ka._file_names(extra, KEPT_FILE))
    gone = []
    for path in old:
        if path.name not in named:
            path.unlink(missing_ok=True)
            gone.append(path.name)
    if gone:
        gone.sort()
        log.warning("cooperation: %d file(s) nothing names deleted: %s", len(gone), ", ".join(gone))
        audit.record(A.DELETE, ("cooperation.agreement", "", str(len(gone))), actor_name="worker",
                     count=len(gone), files=gone[:1000])  # fmt: skip
    return len(gone)


# --- projects -----------------------------------------------------------------------------------------------


def _project_values(user, agreement: Agreement, data: dict) -> dict:
    errors: dict = {}
    out = {
        "title": _text(errors, "title", data.get("title"), 200, required=True),
        "goal": _text(errors, "goal", data.get("goal"), 5000, required=True),
        "responsible": _user(errors, "responsible", data.get("responsible")),
        "start_date": _date(errors, "start_date", data.get("start_date")),
        "end_date": _date(errors, "end_date", data.get("end_date")),
        "budget": _amount(errors, "budget", data.get("budget")),
    }
    _term(errors, out)
    if "start_date" not in errors and out["start_date"] and out["start_date"] < agreement.start_date:
        errors["start_date"] = [_("The project cannot start before its agreement (%(date)s).") % {
            "date": agreement.start_date.isoformat()}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    return out


def create_project(user, agreement: Agreement, data: dict) -> Project:
    require_manage(user, agreement)
    if agreement.status not in (AgreementStatus.SIGNED, AgreementStatus.IN_FORCE):
        raise ValidationError({"agreement": [_("Projects are carried out under a signed agreement.")]})
    values = _project_values(user, agreement, data)
    with transaction.atomic():
        project = Project.objects.create(agreement=agreement, created_by=user, **values)
        audit.record(A.CREATE, project, user=user, changes={k: [None, _plain(v)] for k, v in values.items()
                                                            if v not in (None, "")})  # fmt: skip
    return project


def update_project(user, project: Project, data: dict, version) -> Project:
    require_manage(user, project.agreement)
    _check_version(project, version)
    if project.status == ProjectStatus.CLOSED:
        raise ValidationError({"status": [_("This project is closed.")]})
    data = personal.restore_free_text(user, data, project, PROJECT_TEXTS)
    values = _project_values(user, project.agreement, {**{f: getattr(project, f) for f in PROJECT_FIELDS}, **data})
    changes = {k: [_plain(getattr(project, k)), _plain(v)] for k, v in values.items() if getattr(project, k) != v}
    if changes:
        with transaction.atomic():
            for k, v in values.items():
                setattr(project, k, v)
            _save_versioned(project, list(values), project.version)
            audit.record(A.UPDATE, project, user=user, changes=changes)
    return project


def _set_status(user, project: Project, new: str, version=None) -> None:
    old = project.status
    project.status = new
    _save_versioned(project, ["status"], int(version if version is not None else project.version))
    audit.record(A.UPDATE, project, user=user, changes={"status": [old, new]})


def start_project(user, project: Project, version=None) -> Project:
    require_manage(user, project.agreement)
    _check_version(project, version)
    if project.status != ProjectStatus.PLANNING:
        raise ValidationError({"status": [_("Only a project being planned can start.")]})
    with transaction.atomic():
        _set_status(user, project, ProjectStatus.RUNNING, version)
    return project


def _lock(project: Project) -> Project:
    """The project as it is now, held for the rest of the transaction (payments and acceptances one at a time)."""
    fresh = Project.objects.select_for_update().get(pk=project.pk)
    project.status, project.version, project.settlement_status = fresh.status, fresh.version, fresh.settlement_status
    project.amount_due = fresh.amount_due
    return project


def add_task(user, project: Project, data: dict) -> Task:
    require_manage(user, project.agreement)
    if project.status not in OPEN_PROJECT:
        raise ValidationError({"status": [_("Tasks are planned while the project is open.")]})
    errors: dict = {}
    values = {
        "title": _text(errors, "title", data.get("title"), 200, required=True),
        "owner": _user(errors, "owner", data.get("owner")),
        "deadline": _date(errors, "deadline", data.get("deadline")),
    }
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        task = Task.objects.create(project=project, **values)
        audit.record(A.CREATE, task, user=user, changes={k: [None, _plain(v)] for k, v in values.items()})
    return task


def task_version_required() -> str:
    """A task's progress report without the task's version it was loaded at (the page's form and the API)."""
    return _("Send the task's version you loaded, so that progress reported by others in the meantime is not "
             "overwritten.")


class TaskConflict(ConflictError):
    """Someone else reported the task's progress after this user loaded it: nothing was saved."""

    def __init__(self, current: Task):
        super().__init__(current.version)
        who = current.updated_by.display_name if current.updated_by_id else _("someone else")
        self.args = (
            _("“%(task)s” was changed by %(who)s while you were working on it (it is now %(status)s, %(progress)s), "
              "so nothing was saved. Reload and report the progress again.") % {
                "task": current.title, "who": who, "status": current.get_status_display(),
                "progress": percent_text(current.progress)},
        )  # fmt: skip

    def __str__(self) -> str:
        return self.args[0]


def update_task(user, task: Task, data: dict, version=None) -> Task:
    """Progress of a task: its status and percentage (done is 100 %). Its owner may report it too. A `version` other
    than the task's current one (someone else reported since it was loaded) is refused: TaskConflict."""
    project = task.project
    if not (may_manage(user, project.agreement) or (task.owner_id == user.pk and access.can(user, Cap.READ_COOPERATION)
                                                    and not access.roles_of(user) & READ_ONLY_ROLES)):  # fmt: skip
        raise PermissionDenied(_("You do not have permission to do this."))
    errors: dict = {}
    status = data.get("status", task.status)
    if status not in TaskStatus.values:
        errors["status"] = [_("Choose a status.")]
    progress = _progress(data.get("progress", task.progress))
    if progress is None:
        errors["progress"] = [_("Give the progress as a whole number from 0 to 100.")]
        progress = task.progress
    try:
        expected = int(version) if version not in (None, "") else None
    except (TypeError, ValueError):
        expected = -1  # a garbled version is as stale as an old one
    if errors:
        raise ValidationError(errors)
    if status == TaskStatus.DONE:
        progress = 100
    with transaction.atomic():
        current = Task.objects.select_for_update().filter(pk=task.pk).first()
        if current is None:
            raise ValidationError({"task": [no_task_message()]})
        if expected is not None and current.version != expected:
            raise TaskConflict(Task.objects.select_related("updated_by").get(pk=task.pk))
        changes = {k: [getattr(current, k), v] for k, v in {"status": status, "progress": progress}.items()
                   if getattr(current, k) != v}  # fmt: skip
        if changes:
            current.status, current.progress = status, progress
            current.version += 1
            current.updated_by = user
            current.save(update_fields=["status", "progress", "version", "updated_by"])
            audit.record(A.UPDATE, current, user=user, changes=changes)
    task.status, task.progress, task.version, task.updated_by_id = (current.status, current.progress, current.version,
                                                                    current.updated_by_id)  # fmt: skip
    return task


def add_check(user, project: Project, data: dict) -> Check:
    require_manage(user, project.agreement)
    errors: dict = {}
    if project.status not in OPEN_PROJECT:
        errors["status"] = [_("Checks are recorded while the project is open.")]
    checked_on = _date(errors, "checked_on", data.get("checked_on"), not_future=True)
    progress = _progress(data.get("progress"))
    if progress is None:
        errors["progress"] = [_("Give the progress as a whole number from 0 to 100.")]
    problems = _text(errors, "problems", data.get("problems"), 5000)
    measures = _text(errors, "measures", data.get("measures"), 5000)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        check = Check.objects.create(project=project, checked_on=checked_on, progress=progress, problems=problems,
                                     measures=measures, recorded_by=user)  # fmt: skip
        audit.record(A.CREATE, check, user=user, changes={"checked_on": [None, checked_on],
                                                          "progress": [None, progress]})  # fmt: skip
    return check


def record_acceptance(user, project: Project, data: dict, upload=None) -> Acceptance:
    """An acceptance against the agreement's standards: passed (with or without remarks) makes the project accepted,
    awaiting its settlement; failed leaves it running, to be accepted again."""
    require_manage(user, project.agreement)
    errors: dict = {}
    accepted_on = _date(errors, "accepted_on", data.get("accepted_on"), not_future=True)
    result = data.get("result") or ""
    if result not in AcceptanceResult.values:
        errors["result"] = [_("Choose the result.")]
    standards = _text(errors, "standards", data.get("standards"), 5000, required=True)
    remarks = _text(errors, "remarks", data.get("remarks"), 5000)
    if result in (AcceptanceResult.REMARKS, AcceptanceResult.FAILED) and not remarks and "remarks" not in errors:
        errors["remarks"] = [_("Say what was found.")]
    accepted_by = _text(errors, "accepted_by", data.get("accepted_by"), 100, required=True)
    if project.status != ProjectStatus.RUNNING:
        errors["status"] = [_("A project is accepted while it runs.")]
    if errors:
        raise ValidationError(errors)
    stored = _store("attachment", upload, f"acceptance-{project.pk}") if upload is not None else None
    try:
        with transaction.atomic():
            _lock(project)
            if project.status != ProjectStatus.RUNNING:
                raise ValidationError({"status": [_("A project is accepted while it runs.")]})
            acceptance = Acceptance.objects.create(
                project=project, accepted_on=accepted_on, result=result, standards=standards, remarks=remarks,
                accepted_by=accepted_by, recorded_by=user, attachment=stored[0].name if stored else "",
                attachment_name=stored[1] if stored else "", attachment_sha256=stored[2] if stored else "",
            )  # fmt: skip
            audit.record(A.CREATE, acceptance.audit_name, user=user, changes={"result": [None, result],
                                                                   "accepted_on": [None, accepted_on]})  # fmt: skip
            if result != AcceptanceResult.FAILED:
                _set_status(user, project, ProjectStatus.ACCEPTED)
    except BaseException:
        if stored:
            stored[0].unlink(missing_ok=True)
        raise
    return acceptance


def settlement_status(due: Decimal | None, paid: Decimal) -> str:
    if due is None or (paid <= 0 and due > 0):
        return SettlementStatus.PENDING
    return SettlementStatus.SETTLED if paid >= due else SettlementStatus.PARTLY


def amount_paid(project: Project) -> Decimal:
    return project.payments.aggregate(s=Sum("amount"))["s"] or Decimal("0.00")


def set_amount_due(user, project: Project, data: dict, version=None) -> Project:
    require_manage(user, project.agreement)
    _check_version(project, version)
    errors: dict = {}
    due = _amount(errors, "amount_due", data.get("amount_due"), required=True)
    due_date = _date(errors, "settlement_due_date", data.get("settlement_due_date"), required=False)
    if project.status == ProjectStatus.CLOSED:
        errors["status"] = [_("This project is closed.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        _lock(project)
        paid = amount_paid(project)
        if due < paid:
            raise ValidationError({"amount_due": [_("%(paid)s has been paid already.") % {"paid": f"¥{paid:,}"}]})
        old = [_plain(project.amount_due), project.settlement_status]
        project.amount_due, project.settlement_due_date = due, due_date
        project.settlement_status = settlement_status(due, paid)
        _save_versioned(project, ["amount_due", "settlement_due_date", "settlement_status"],
                        int(version if version is not None else project.version))  # fmt: skip
        audit.record(A.UPDATE, project, user=user, changes={"amount_due": [old[0], due],
                                                            "settlement_status": [old[1], project.settlement_status]})
    return project


def amount_due_is(project: Project, data: dict) -> bool:
    """Whether the project's amount due and payment date are the ones `data` gives, read as set_amount_due reads them:
    the amount-due form sent again (a double click) finds what its first sending saved."""
    errors: dict = {}
    due = _amount(errors, "amount_due", data.get("amount_due"), required=True)
    due_date = _date(errors, "settlement_due_date", data.get("settlement_due_date"), required=False)
    return not errors and (project.amount_due, project.settlement_due_date) == (due, due_date)


def add_payment(user, project: Project, data: dict) -> Payment:
    """A payment towards the amount due; more than is still due is refused (the amounts stay clear)."""
    require_manage(user, project.agreement)
    errors: dict = {}
    paid_on = _date(errors, "paid_on", data.get("paid_on"), not_future=True)
    amount = _amount(errors, "amount", data.get("amount"), required=True, positive=True)
    invoice = _text(errors, "invoice_number", data.get("invoice_number"), 50)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        _lock(project)
        if project.amount_due is None:
            raise ValidationError({"amount_due": [_("Set the amount due first.")]})
        if project.status == ProjectStatus.CLOSED:
            raise ValidationError({"status": [_("This project is closed.")]})
        paid = amount_paid(project)
        if paid + amount > project.amount_due:
            raise ValidationError({"amount": [_("Only %(left)s is still due.") % {
                "left": f"¥{project.amount_due - paid:,}"}]})  # fmt: skip
        payment = Payment.objects.create(project=project, paid_on=paid_on, amount=amount, invoice_number=invoice,
                                         recorded_by=user)  # fmt: skip
        old = project.settlement_status
        project.settlement_status = settlement_status(project.amount_due, paid + amount)
        _save_versioned(project, ["settlement_status"], project.version)
        audit.record(A.CREATE, payment, user=user, changes={"amount": [None, amount], "paid_on": [None, paid_on],
                                                            "invoice_number": [None, invoice]})  # fmt: skip
        if old != project.settlement_status:
            audit.record(A.UPDATE, project, user=user, changes={"settlement_status": [old, project.settlement_status]})
    return payment


def close_project(user, project: Project, version=None) -> Project:
    """Closed only when accepted and settled."""
    require_manage(user, project.agreement)
    _check_version(project, version)
    with transaction.atomic():
        _lock(project)
        errors = {}
        if project.status != ProjectStatus.ACCEPTED:
            errors["status"] = [_("A project is closed once it has passed its acceptance.")]
        if project.settlement_status != SettlementStatus.SETTLED:
            errors["settlement_status"] = [_("A project is closed once it is settled.")]
        if errors:
            raise ValidationError(errors)
        _set_status(user, project, ProjectStatus.CLOSED, version)
    return project


# --- the worker ---------------------------------------------------------------------------------------------


def _notify(recipients, kind: str, title, body, url: str, obj) -> None:
    from pharmacrm.notify import services as notify

    people = [u for u in recipients if u is not None and u.is_active]
    if people:
        notify.send(people, kind=kind, title=title, body=body, url=url, obj=obj)


def sweep(now: dt.datetime | None = None) -> tuple[int, int, int]:
    """Renewal reminders (once per agreement, `COOPERATION_RENEWAL_NOTICE_DAYS` before the end of one in force),
    the expiry of agreements in force whose term ended, and overdue task alerts (once per task, to its owner).
    Each one is claimed by a conditional update, so that two workers never send it twice. (reminded, expired,
    overdue)."""
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    horizon = today + dt.timedelta(days=settings.COOPERATION_RENEWAL_NOTICE_DAYS)
    reminded = expired = overdue = 0
    # amendments signed ahead of their effective date whose day has come: the term in force first (term_on today)
    waiting = AgreementAmendment.objects.filter(applied_at__isnull=True, lapsed_at__isnull=True, effective_date__lte=today)
    for agreement_id in waiting.order_by().values_list("agreement_id", flat=True).distinct():
        with transaction.atomic():
            agreement = Agreement.objects.select_for_update().filter(
                pk=agreement_id, status__in=COOPERATION_TERMS.amendable_statuses).first()  # fmt: skip
            if agreement is not None:
                amendments.apply_due(agreement, COOPERATION_TERMS, today)
    # the reminder follows the end the agreement will have once an amendment waiting for its day applies
    # (amendments.reminded_end): extended, none for the end it has now; shortened, earlier
    waits = Q(amendments__applied_at__isnull=True, amendments__lapsed_at__isnull=True)
    due = Agreement.objects.filter(
        Q(end_date__lte=horizon, end_date__gte=today) | Q(waits, amendments__end_date__lte=horizon,
                                                          amendments__end_date__gte=today),
        status=AgreementStatus.IN_FORCE, renewal_notified_at__isnull=True,
    ).distinct()  # fmt: skip
    for agreement in due.select_related("owner", "institution"):
        with transaction.atomic():
            # under the agreement's lock, as an amendment is recorded: the end read is the one the reminder is for
            fresh = Agreement.objects.select_for_update().filter(
                pk=agreement.pk, status=AgreementStatus.IN_FORCE, renewal_notified_at__isnull=True).first()  # fmt: skip
            if fresh is None:
                continue
            end = amendments.reminded_end(fresh)
            if not today <= end <= horizon:
                continue
            # kept with the end it was for: an amendment moving the end elsewhere brings one for the new end
            Agreement.objects.filter(pk=agreement.pk).update(renewal_notified_at=now, renewal_notified_for=end)
            audit.record(A.UPDATE, agreement, changes={"renewal_notified_at": [None, now]}, actor_name="system")
            _notify([agreement.owner], "cooperation.renewal",
                    Message(gettext_lazy("Cooperation agreement %(number)s ends on %(date)s"), number=agreement.number,
                            date=end.isoformat()),
                    Message(gettext_lazy("%(customer)s: decide whether to renew it."), customer=agreement.institution.name),
                    reverse("cooperation:agreement", args=[agreement.pk]), agreement)  # fmt: skip
            reminded += 1
    for agreement in Agreement.objects.filter(status=AgreementStatus.IN_FORCE, end_date__lt=today):
        with transaction.atomic():
            if Agreement.objects.filter(pk=agreement.pk, status=AgreementStatus.IN_FORCE).update(
                status=AgreementStatus.EXPIRED, version=F("version") + 1
            ):
                audit.record(A.UPDATE, agreement, changes={"status": [AgreementStatus.IN_FORCE, AgreementStatus.EXPIRED]},
                             actor_name="system")  # fmt: skip
                expired += 1
    late = Task.objects.filter(deadline__lt=today, overdue_notified_at__isnull=True,
                               project__status__in=OPEN_PROJECT).exclude(status=TaskStatus.DONE)  # fmt: skip
    for task in late.select_related("owner", "project"):
        with transaction.atomic():
            if not Task.objects.filter(pk=task.pk, overdue_notified_at__isnull=True).exclude(
                status=TaskStatus.DONE
            ).update(overdue_notified_at=now):
                continue
            audit.record(A.UPDATE, task, changes={"overdue_notified_at": [None, now]}, actor_name="system")
            _notify([task.owner], "cooperation.overdue",
                    Message(gettext_lazy("Overdue cooperation task: %(title)s"), title=task.title),
                    Message(gettext_lazy("Project %(project)s; deadline %(date)s."), project=task.project.title,
                            date=task.deadline.isoformat()),
                    reverse("cooperation:project", args=[task.project_id]), task)  # fmt: skip
            overdue += 1
    return reminded, expired, overdue


def no_agreement_message() -> str:
    return _("No such agreement, or one you may not see.")


def no_task_message() -> str:
    return _("No such task in this project.")
