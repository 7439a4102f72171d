"""Every change to safety and quality cases: checked, validated, written in one transaction, audited.

Day 0 is when the company first heard of the case (the source ticket's or interaction's `received_at`),
never when PV opened it. Each version of a case (the initial report and every follow-up) gets its own
reporting clocks, counted from its own receipt date, from the active rules of each jurisdiction. The
clocks use the one due-clock mechanism (core/dueclock.py) and are swept by the worker like the service
desk's.

Personal data (patient, reporter identity, narrative) is encrypted in the database; the audit trail
records which of those fields changed, never their values."""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, builtin, dueclock, signatures
from pharmacrm.core.deferred import Message
from pharmacrm.core.deferred import label as choice_label
from pharmacrm.core.form_saves import sent_again_after
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Counter, User
from pharmacrm.core.numbers import PLAIN_NUMBER
from pharmacrm.core.roles import Cap, Role
from pharmacrm.customers.services import ConflictError

from . import conf, partial_dates
from .choices import (
    DEATH_CONDITIONS,
    SERIOUSNESS,
    AckStatus,
    ActionTaken,
    AgeUnit,
    CapaStatus,
    CaseKind,
    CaseStatus,
    Causality,
    Challenge,
    Channel,
    ClockKind,
    Criterion,
    DrugRole,
    Expectedness,
    Jurisdiction,
    Outcome,
    Qualification,
    RecallDecision,
    ReportType,
    RuleCondition,
    Sex,
    SignalKind,
    SignalStatus,
    TaskKind,
)
from .models import (
    Capa,
    CaseFile,
    CaseTask,
    CaseVersion,
    Drug,
    Flag,
    IcsrBatch,
    IcsrMessage,
    QualityComplaint,
    Reaction,
    ReportingRule,
    SafetyCase,
    SafetyClock,
    Submission,
)
from .partial_dates import Precision

A = AuditEntry.Action
WARN_SHARE = 0.75  # "due soon" once three quarters of the time has passed
HANDOFF_WORKING_DAYS = 1  # a safety-relevant ticket reaches PV within one working day
# … but a death or a life-threatening outcome within hours of the clock, holidays and nights included: a death is
# reported to the regulator at once (药品不良反应报告和监测管理办法), and PV is told the moment the net sees it
SERIOUS_HANDOFF = dt.timedelta(hours=4)
_SERIOUS_WORDS = re.compile(
    r"死亡|去世|[过過]世|逝世|[离離]世|身亡|身故|病故|死了|人(?:已[经經]|就|也|都)?(?:走了|[没沒]了|不在了)|[抢搶]救|危及生命|生命危[险險]|病危|重症[监監][护護]|icu|昏迷|休克|住院|住[进進][医醫]院|"
    r"\b(?:died|death|dead|fatal|passed away|life-threatening|resuscitat\w*|intensive care|coma|hospitali[sz]\w*)\b",
    re.IGNORECASE,
)


def sounds_serious(texts: Iterable[str]) -> bool:
    """Whether a flagged text speaks of a death, a life-threatening state or a hospital stay."""
    return any(_SERIOUS_WORDS.search(t or "") for t in texts)
FOLLOW_UP_DAYS = 7  # the follow-up request for missing minimum criteria
LITERATURE_MAX = 500  # C.4.r.1, each literature reference

# fields of the case a user may set; encrypted ones are audited by name only
PATIENT_FIELDS = (
    "patient_name", "patient_sex", "patient_birth_date", "patient_age", "patient_age_unit", "patient_weight_kg",
    "patient_height_cm", "patient_pregnancy", "patient_history", "patient_record_number",
)  # fmt: skip
REPORTER_FIELDS = ("reporter_name", "reporter_contact", "reporter_institution")
SECRET_FIELDS = frozenset(PATIENT_FIELDS + REPORTER_FIELDS + ("narrative", "reporter_comment"))
PLAIN_FIELDS = (
    "kind", "report_type", "country", "worldwide_id", "sender_case_id", "imported_from", "reporter_qualification",
    "reporter_country", "expectedness", "causality_reporter", "causality_company", "sender_comment", "literature",
    "latest_received_at",
)  # fmt: skip
CASE_FIELDS = PATIENT_FIELDS + REPORTER_FIELDS + ("narrative", "reporter_comment") + PLAIN_FIELDS
DRUG_FIELDS = (
    "role", "product", "brand_name", "generic_name", "approval_number", "manufacturer", "dosage_form", "batch",
    "dose", "dose_unit", "route", "frequency", "start_date", "stop_date", "indication", "indication_meddra",
    "action_taken", "dechallenge", "rechallenge", "start_precision", "stop_precision",
)  # fmt: skip
REACTION_FIELDS = (
    "verbatim", "language", "meddra_version", "meddra_llt", "meddra_pt", "onset_date", "end_date", "outcome",
    *SERIOUSNESS, "onset_precision", "end_precision",
)  # fmt: skip
# a reaction's and a drug's dates may be known to the month or the year only (E2B(R3) E.i.4 / E.i.5, G.k.4.r.4 /
# G.k.4.r.5); the precision comes with the value typed (2026-03), never on its own
PARTIAL_DATES = {"onset_date": "onset_precision", "end_date": "end_precision", "start_date": "start_precision",
                 "stop_date": "stop_precision"}  # fmt: skip
CHOICES = {
    "kind": CaseKind, "report_type": ReportType, "reporter_qualification": Qualification, "patient_sex": Sex,
    "patient_age_unit": AgeUnit, "expectedness": Expectedness, "causality_reporter": Causality,
    "causality_company": Causality,
}  # fmt: skip
DRUG_CHOICES = {"role": DrugRole, "action_taken": ActionTaken, "dechallenge": Challenge, "rechallenge": Challenge}
AGE_LIMITS = {AgeUnit.YEARS: 150, AgeUnit.DECADES: 15, AgeUnit.MONTHS: 1800, AgeUnit.WEEKS: 7800,
              AgeUnit.DAYS: 55000, AgeUnit.HOURS: 1_314_000}  # fmt: skip
CRITERION_HELP = {
    Criterion.PATIENT: gettext_lazy("initials, name, sex, age, birth date or record number of the patient"),
    Criterion.REPORTER: gettext_lazy("the reporter's name, contact, institution or qualification"),
    Criterion.PRODUCT: gettext_lazy("at least one suspect drug with its name"),
    Criterion.REACTION: gettext_lazy("at least one reaction in the reporter's words"),
}


class SystemActor:
    """Who acts when no user does (the worker, a command-line import). Allowed every safety step;
    recorded as its name in the audit trail."""

    is_authenticated = False
    pk = id = None

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


SYSTEM = SystemActor("system")


def require(user, cap: Cap = Cap.HANDLE_SAFETY) -> None:
    if not isinstance(user, SystemActor):
        access.require(user, cap)


def _actor(user) -> User | None:
    return user if getattr(user, "is_authenticated", False) else None


def _record(action: str, obj, user, **extra) -> None:
    if isinstance(user, SystemActor):
        audit.record(action, obj, actor_name=user.name, **extra)
    else:
        audit.record(action, obj, user=user, **extra)


def next_number(kind: str, at: dt.datetime) -> str:
    prefix = "QC" if kind == CaseKind.QUALITY else "AE"
    year = timezone.localtime(at).year
    return f"{prefix}-{year}-{Counter.allocate(f'safety:{prefix}:{year}'):06d}"


# --- validation ----------------------------------------------------------------------------------------


def _clean_date(value, field: str, errors: dict) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        errors.setdefault(field, []).append(_("Enter a date as YYYY-MM-DD."))
        return None


def _clean_partial_date(value, field: str, errors: dict, precision=None) -> tuple[dt.date | None, str]:
    """A reaction's onset or end, a drug's start or stop: a day, a month or a year (2026-03-15, 2026-03, 2026), with its
    precision. A date given with its precision (an imported ICSR's 202603: the month's first day and "month") is taken
    at it."""
    if isinstance(value, dt.datetime):
        return _clean_date(value, field, errors), Precision.DAY
    if isinstance(value, dt.date) and precision in Precision.values:
        return partial_dates.parse(partial_dates.text(value, precision))
    try:
        parsed = partial_dates.parse(value)
    except ValueError:
        errors.setdefault(field, []).append(str(partial_dates.INVALID))
        return None, Precision.DAY
    return parsed if parsed is not None else (None, Precision.DAY)


_PLAIN_NUMBER = PLAIN_NUMBER  # the export's number (rules._NUMBER)


def _clean_number(value, field: str, errors: dict, *, upper: float) -> str:
    # ４５ or ６０．５ from an input method in full-width mode: kept as typed, the ICSR failed its schema at export
    text = unicodedata.normalize("NFKC", str(value or "")).strip()
    if not text:
        return ""
    # in digits, as E2B's PQ takes it: float() also reads 1e2, 1_000 or Arabic-Indic ٤٥, which were stored as typed
    # and refused only at the export, days later
    if not _PLAIN_NUMBER.fullmatch(text):
        errors.setdefault(field, []).append(_("Enter a number."))
        return ""
    number = float(text)
    if not 0 < number <= upper:
        errors.setdefault(field, []).append(_("Enter a number between 0 and %(upper)s.") % {"upper": upper})
        return ""
    return text


def _clean_choice(value, choices, field: str, errors: dict) -> str:
    text = "" if value is None else str(value).strip()
    if text and text not in choices.values:
        errors.setdefault(field, []).append(_("“%(value)s” is not one of the allowed values.") % {"value": text})
        return ""
    return text


def oldest_birth_date(today: dt.date | None = None) -> dt.date:
    """The earliest birth date a patient can have: as old as the oldest age the case takes (150 years)."""
    today = today or timezone.localdate()
    return today.replace(year=today.year - AGE_LIMITS[AgeUnit.YEARS], day=min(today.day, 28))


def _clean_case_values(data: dict, errors: dict, *, as_sent: bool = False) -> dict:
    """The case fields present in `data`, cleaned (choices, dates, numbers, lengths). `as_sent`: an incoming ICSR's,
    whose birth date is kept as its sender wrote it."""
    values: dict = {}
    for field in CASE_FIELDS:
        if field not in data:
            continue
        value = data[field]
        if field in CHOICES:
            value = _clean_choice(value, CHOICES[field], field, errors)
            if field == "kind" and not value:
                errors.setdefault("kind", []).append(_("Choose the kind of case."))
        elif field == "patient_birth_date":
            value = _clean_date(value, field, errors)
            if value and value > timezone.localdate():
                errors.setdefault(field, []).append(_("A birth date cannot be in the future."))
            elif value and not as_sent and value < oldest_birth_date():  # a year mistyped (1856 for 1956)
                errors.setdefault(field, []).append(
                    _("A birth date more than %(years)d years ago is a typing error: check the year.")
                    % {"years": AGE_LIMITS[AgeUnit.YEARS]}
                )  # fmt: skip
        elif field == "patient_weight_kg":
            value = _clean_number(value, field, errors, upper=500)
        elif field == "patient_height_cm":
            value = _clean_number(value, field, errors, upper=300)
        elif field == "patient_age":
            unit = data.get("patient_age_unit") or AgeUnit.YEARS
            value = _clean_number(value, field, errors, upper=AGE_LIMITS.get(unit, 150))
        elif field == "latest_received_at":
            if value is None:
                continue
        elif field == "literature":  # C.4.r.1: one reference a line, each at most 500 characters (ICH)
            lines = [" ".join(line.split()) for line in str(value or "").splitlines()]
            value = "\n".join(line for line in lines if line)
            for n, line in enumerate(value.splitlines() if value else [], 1):
                if len(line) > LITERATURE_MAX:
                    errors.setdefault(field, []).append(
                        _("Reference %(n)d has %(count)d characters: at most %(limit)d each (one reference a line).")
                        % {"n": n, "count": len(line), "limit": LITERATURE_MAX}
                    )
        elif field in ("country", "reporter_country"):  # ＣＮ typed in full width is CN, the code E2B takes
            value = unicodedata.normalize("NFKC", str(value or "")).strip().upper()
            # ASCII letters: 中国 or 美国 are two letters too (str.isalpha), and went out as C.1.1 "中国-…" and E.i.9
            if value and (len(value) != 2 or not value.isascii() or not value.isalpha()):
                errors.setdefault(field, []).append(_("Enter a two-letter country code (ISO 3166), e.g. CN."))
        else:
            value = "" if value is None else str(value).strip()
            limit = SafetyCase._meta.get_field(field).max_length
            if limit and len(value) > limit:
                errors.setdefault(field, []).append(
                    _("At most %(limit)d characters (this has %(count)d).") % {"limit": limit, "count": len(value)}
                )
        values[field] = value
    if values.get("patient_age") and not (values.get("patient_age_unit") or data.get("patient_age_unit")):
        values["patient_age_unit"] = AgeUnit.YEARS
    return values


def _check_latest(values: dict, day0: dt.datetime, errors: dict, stored: dt.datetime | None = None,
                  case: SafetyCase | None = None) -> None:  # fmt: skip
    """C.1.5, the date of the most recent information, between day 0 (C.1.4) — or the receipt of the case's latest
    follow-up, which is information too — and now: taken as sent, a date before day 0 or a mistyped year ahead was
    kept until the export refused it, and an incoming follow-up was "older than what the case holds" and not
    applied."""
    latest = values.get("latest_received_at")
    if latest is None:
        return
    if isinstance(latest, str):
        try:
            latest = dt.datetime.fromisoformat(latest)
        except ValueError:
            errors.setdefault("latest_received_at", []).append(_("Enter a date and time."))
            return
    if timezone.is_naive(latest):
        latest = timezone.make_aware(latest)
    values["latest_received_at"] = latest
    if stored is not None and abs(latest - stored) < dt.timedelta(seconds=1):
        return  # sent back as stored (a whole case returned with one change): not the client's to answer for
    # (a case's follow-up received on 6 November: the most recent information is not of 3 November — the ICSR said so
    # to the regulator, and a partner's report of 5 November was applied over the follow-up)
    newest = (case.versions.filter(sequence__gt=0).order_by("-received_at").values_list("received_at", flat=True)
              .first() if case is not None else None)  # fmt: skip
    if latest < day0:
        errors.setdefault("latest_received_at", []).append(
            _("The most recent information cannot predate the first receipt (%(day0)s).")
            % {"day0": timezone.localtime(day0).strftime("%Y-%m-%d %H:%M")}
        )
    elif newest is not None and latest < newest:
        errors.setdefault("latest_received_at", []).append(
            _("The most recent information cannot predate the follow-up received %(date)s.")
            % {"date": timezone.localtime(newest).strftime("%Y-%m-%d %H:%M")}
        )
    elif latest > timezone.now() + dt.timedelta(minutes=5):
        errors.setdefault("latest_received_at", []).append(_("The most recent information cannot be in the future."))


MEDDRA_CODE_FIELDS = ("meddra_llt", "meddra_pt", "indication_meddra")


def _check_coded(field: str, value: str, key: str, errors: dict) -> None:
    """A MedDRA code or version, a dose or its unit as the E2B(R3) export will need it, refused at its field when it is
    typed: taken as typed ("1003784", "27", "两片", "小勺"), they were refused only by the export, days later, when the
    report was due. (An incoming ICSR keeps what its sender sent: the officer corrects it, the file is not refused.)"""
    from .e2b import rules

    if not value:
        return
    if field in MEDDRA_CODE_FIELDS and not rules.MEDDRA_CODE.fullmatch(value):
        errors.setdefault(key, []).append(_("A MedDRA code has 8 digits (e.g. 10037844)."))
    elif field == "meddra_version" and not rules.MEDDRA_VERSION.fullmatch(value):
        errors.setdefault(key, []).append(_("Write the MedDRA version as its release, e.g. 27.1."))
    elif field == "dose" and (not _PLAIN_NUMBER.fullmatch(value) or float(value) <= 0):
        errors.setdefault(key, []).append(_("Enter the dose as a number greater than 0 (e.g. 0.5); its unit goes in "
                                            "the dose unit."))  # fmt: skip
    elif field == "dose_unit":
        code = rules.ucum_unit(value)
        if not (code.isascii() and code.isprintable() and " " not in code):
            errors.setdefault(key, []).append(
                _("“%(value)s” is not a unit the regulator can read: write a UCUM code (mg, mL, [iU]) or 毫克, 毫升, "
                  "国际单位, 片, 粒 ….") % {"value": value}
            )  # fmt: skip


def coded_problems(data: dict) -> dict[str, list[str]]:
    """What _check_coded would refuse in an incoming ICSR's rows ({"reactions[0].meddra_llt": [message]}): the case
    keeps them as sent, and the import warns of each, to be corrected before the case is reported."""
    problems: dict[str, list[str]] = {}
    for prefix, fields in (("reactions", ("meddra_version", "meddra_llt", "meddra_pt")),
                           ("drugs", ("dose", "dose_unit", "indication_meddra"))):  # fmt: skip
        for i, row in enumerate(data.get(prefix) or []):
            for field in fields:
                value = unicodedata.normalize("NFKC", str(row.get(field) or "")).strip()
                _check_coded(field, value, f"{prefix}[{i}].{field}", problems)
    return problems


def _clean_rows(rows, model, fields: tuple, choices: dict, prefix: str, errors: dict, *,
                as_sent: bool = False) -> list[dict]:  # fmt: skip
    """`as_sent`: an incoming ICSR's rows, whose codes, doses and units are kept as the sender wrote them."""
    if rows is None:
        return None
    if not isinstance(rows, list | tuple):
        errors.setdefault(prefix, []).append(_("Give a list."))
        return []
    cleaned = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.setdefault(f"{prefix}[{i}]", []).append(_("Give the fields of each row."))
            continue
        out: dict = {}
        for field in fields:
            if field not in row or field in PARTIAL_DATES.values():
                continue
            value = row[field]
            key = f"{prefix}[{i}].{field}"
            if field in PARTIAL_DATES:
                value, out[PARTIAL_DATES[field]] = _clean_partial_date(value, key, errors,
                                                                       row.get(PARTIAL_DATES[field]))  # fmt: skip
            elif field in choices:
                value = _clean_choice(value, choices[field], key, errors)
            elif field in SERIOUSNESS:
                value = bool(value)
            elif field == "product":
                pass
            else:
                value = "" if value is None else str(value).strip()
                if field in ("dose", "meddra_version", "meddra_llt", "meddra_pt", "indication_meddra"):
                    # numbers and codes (G.k.4.r.1a, E.i.2.1a/b, G.k.7.r.2b): ０．５ or １００３７８４４ typed in full
                    # width is 0.5 or 10037844, which E2B takes — as typed, the export refused them
                    value = unicodedata.normalize("NFKC", value)
                limit = model._meta.get_field(field).max_length
                if limit and len(value) > limit:
                    errors.setdefault(key, []).append(
                        _("At most %(limit)d characters (this has %(count)d).") % {"limit": limit, "count": len(value)}
                    )
                elif not as_sent:
                    _check_coded(field, value, key, errors)
            out[field] = value
        if model is Reaction and not out.get("verbatim"):
            errors.setdefault(f"{prefix}[{i}].verbatim", []).append(_("Write the reaction in the reporter's words."))
        if model is Drug:
            product = out.get("product")
            if product is not None and not (out.get("brand_name") or out.get("generic_name")):
                out["brand_name"], out["generic_name"] = product.brand_name, product.generic_name
                out.setdefault("approval_number", product.approval_number)
                out.setdefault("dosage_form", product.dosage_form)
            if not (out.get("brand_name") or out.get("generic_name")):
                errors.setdefault(f"{prefix}[{i}].brand_name", []).append(_("Name the drug (brand or generic name)."))
            start, stop = out.get("start_date"), out.get("stop_date")
            # compared as periods: stopped in March 2026 is not before started on 15 March 2026
            if start and stop and partial_dates.last_day(stop, out.get("stop_precision", Precision.DAY)) < start:
                errors.setdefault(f"{prefix}[{i}].stop_date", []).append(_("The stop date is before the start date."))
            # as a reaction's onset (a month or a year: its first day — 2027 is ahead in 2026, December 2026 is not in
            # December): G.k.4.r.4 / G.k.4.r.5 are when the drug was first and last given, and the export refuses a
            # date ahead days later, when the report is due
            if start and start > timezone.localdate():
                errors.setdefault(f"{prefix}[{i}].start_date", []).append(_("The start date cannot be in the future."))
            if stop and stop > timezone.localdate():
                errors.setdefault(f"{prefix}[{i}].stop_date", []).append(_("The stop date cannot be in the future."))
        if model is Reaction:
            if out.get("outcome") == Outcome.FATAL:
                # a fatal outcome is the seriousness criterion "results in death" (E.i.3.2a): unticked, the death was
                # listed as not serious, its 报告表 ticked 一般 (general) and its ICSR said "no information"
                out["death"] = True
            onset, end = out.get("onset_date"), out.get("end_date")
            # compared as periods: an end in March 2026 is not before an onset on 15 March 2026
            if onset and end and partial_dates.last_day(end, out.get("end_precision", Precision.DAY)) < onset:
                errors.setdefault(f"{prefix}[{i}].end_date", []).append(_("The end date is before the onset."))
            if onset and onset > timezone.localdate():  # (a month or a year: its first day)
                errors.setdefault(f"{prefix}[{i}].onset_date", []).append(_("The onset cannot be in the future."))
            if end and end > timezone.localdate():  # (likewise: the export refuses E.i.5 ahead of today)
                errors.setdefault(f"{prefix}[{i}].end_date", []).append(_("The end cannot be in the future."))
        cleaned.append(out)
    return cleaned


# --- derived state ---------------------------------------------------------------------------------------


def missing_criteria(case: SafetyCase, drugs: Iterable[Drug], reactions: Iterable[Reaction]) -> list[str]:
    """Which of the four minimum criteria of a valid case are missing. A quality complaint without a
    reaction needs only a reporter and the product (in a drug row or the complaint's own product/batch)."""
    reactions = [r for r in reactions if r.verbatim]
    quality_only = case.kind == CaseKind.QUALITY and not reactions
    missing = []
    # ICH E2D / GVP VI.B.2 / 个例药品不良反应收集和报告指导原则: a patient is identifiable by initials, an identification
    # (record) number, birth date, age or sex; a reporter by name, initials, address or qualification — "a physician
    # called about a patient" is a valid case whose day 0 is that call, not a case waiting for a name
    patient = (case.patient_name, case.patient_sex, case.patient_age, case.patient_birth_date, case.patient_record_number)
    if not quality_only and not any(patient):
        missing.append(Criterion.PATIENT.value)
    if not any((case.reporter_name, case.reporter_contact, case.reporter_institution, case.reporter_qualification)):
        missing.append(Criterion.REPORTER.value)
    named = any(d.role in (DrugRole.SUSPECT, DrugRole.INTERACTING) and (d.brand_name or d.generic_name) for d in drugs)
    if not named and case.kind == CaseKind.QUALITY:
        complaint = QualityComplaint.objects.filter(case_id=case.pk).only("product_id").first() if case.pk else None
        named = complaint is not None and complaint.product_id is not None
    if not named:
        missing.append(Criterion.PRODUCT.value)
    if not reactions and not quality_only:
        missing.append(Criterion.REACTION.value)
    return missing


def refresh_derived(case: SafetyCase) -> None:
    drugs, reactions = list(case.drugs.all()), list(case.reactions.all())
    case.serious = any(r.serious for r in reactions)
    case.fatal = any(r.death or r.outcome == Outcome.FATAL for r in reactions)
    case.missing = missing_criteria(case, drugs, reactions)
    case.valid = not case.missing


def _sync_follow_up_task(case: SafetyCase, now: dt.datetime) -> None:
    """An invalid case has one open task to collect what is missing; it is done once the case is valid."""
    open_task = case.tasks.filter(kind=TaskKind.FOLLOW_UP, done_at__isnull=True).first()
    if case.valid:
        if open_task:
            open_task.done_at = now
            open_task.save(update_fields=["done_at"])
        return
    labels = [str(CRITERION_HELP[Criterion(c)]) for c in case.missing]
    title = _("Collect the missing information: %(missing)s") % {"missing": "; ".join(labels)}
    if open_task:
        if open_task.details.get("missing") != case.missing:
            open_task.title, open_task.details = title[:200], {"missing": case.missing}
            open_task.save(update_fields=["title", "details"])
        return
    CaseTask.objects.create(
        case=case, kind=TaskKind.FOLLOW_UP, title=title[:200], details={"missing": case.missing},
        assignee=case.owner, due_date=timezone.localdate(now) + dt.timedelta(days=FOLLOW_UP_DAYS), created_at=now,
    )  # fmt: skip


# --- regulatory clocks -------------------------------------------------------------------------------------


# the countries whose cases are a jurisdiction's own (E.i.9); a case of no known country counts as domestic, the
# clocks running rather than a report missed. 境内 is the mainland: a case from Hong Kong, Macao or Taiwan is foreign
JURISDICTION_COUNTRIES = {
    "CN": {"CN"},
    "US": {"US"},
    "EU": {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
           "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"},  # the EEA
}  # fmt: skip


def domestic(case: SafetyCase, jurisdiction: str) -> bool:
    """Whether the case occurred in the jurisdiction (its country, E.i.9; unknown counts as domestic)."""
    country = (case.country or "").upper()
    return not country or country in JURISDICTION_COUNTRIES.get(jurisdiction, {jurisdiction})


def _applies(condition: str, case: SafetyCase, jurisdiction: str = "CN") -> bool:
    unexpected = case.expectedness == Expectedness.UNEXPECTED
    if condition == RuleCondition.SERIOUS_DOMESTIC:
        return domestic(case, jurisdiction) and case.serious
    if condition == RuleCondition.NEW_OR_SERIOUS_DOMESTIC:
        return domestic(case, jurisdiction) and (case.serious or unexpected)
    if condition == RuleCondition.OTHER_DOMESTIC:
        return domestic(case, jurisdiction)
    if condition == RuleCondition.SERIOUS_FOREIGN:
        return case.serious and not domestic(case, jurisdiction)
    if condition == RuleCondition.DEATH:
        return case.fatal
    if condition == RuleCondition.DEATH_DOMESTIC:
        return case.fatal and domestic(case, jurisdiction)
    if condition == RuleCondition.SUSAR_FATAL_LT:
        # 药物临床试验期间安全性数据快速报告标准和程序: a fatal or life-threatening SUSAR within 7 days, not 15
        return case.report_type == ReportType.STUDY and unexpected and (
            case.fatal or any(r.life_threatening for r in case.reactions.all())
        )
    if condition == RuleCondition.NEW_OR_SERIOUS:
        return case.serious or unexpected
    if condition == RuleCondition.SERIOUS_UNEXPECTED:
        return case.serious and unexpected
    if condition == RuleCondition.SERIOUS:
        return case.serious
    if condition == RuleCondition.NON_SERIOUS:
        return not case.serious
    return condition == RuleCondition.OTHER


def reportable(case: SafetyCase) -> bool:
    """A quality complaint without a reaction goes to QA, not to the regulator's ADR system."""
    return not (case.kind == CaseKind.QUALITY and not case.reactions.exists())


def rules_for(case: SafetyCase, *, death_told: bool = False) -> list[ReportingRule]:
    """The active rules that set the case's clocks: per jurisdiction, the first report rule that applies,
    and every investigation rule that applies. `death_told`: an earlier version already told of the death, so
    the "report a death at once" rule is passed over and the next rule that applies (a serious case's) sets the
    clock of this follow-up."""
    chosen: list[ReportingRule] = []
    taken: set[str] = set()
    for rule in ReportingRule.objects.filter(active=True).order_by("jurisdiction", "position", "id"):
        if not _applies(rule.condition, case, rule.jurisdiction):
            continue
        if death_told and rule.clock_kind == ClockKind.REPORT and rule.condition in DEATH_CONDITIONS:
            continue
        if rule.clock_kind == ClockKind.REPORT:
            if rule.jurisdiction in taken:
                continue
            taken.add(rule.jurisdiction)
        chosen.append(rule)
    return chosen


def day_deadline(start: dt.datetime, days: int) -> dt.datetime:
    """The end of calendar day `days` after day 0, the day `start` falls on, in the company's time zone:
    "不迟于获知信息后的30日" / "within 15 calendar days" is met by a report on day 30 / day 15 at any hour."""
    local = timezone.localtime(start)
    next_day = dt.datetime.combine(local.date() + dt.timedelta(days=days + 1), dt.time(0), tzinfo=local.tzinfo)
    return next_day - dt.timedelta(seconds=1)


def _due(rule: ReportingRule, start: dt.datetime) -> dt.datetime:
    if rule.unit == ReportingRule.Unit.HOURS:
        return start + dt.timedelta(hours=rule.within)
    return day_deadline(start, rule.within)


def _warn_at(start: dt.datetime, due: dt.datetime) -> dt.datetime:
    return start + (due - start) * WARN_SHARE


def _next_check(clock: SafetyClock) -> dt.datetime | None:
    if clock.met_at or clock.breached_at:
        return None
    if clock.warned_at is None and clock.warn_at:
        return clock.warn_at
    return clock.due_at


def plan_clocks(case: SafetyCase, version: CaseVersion, now: dt.datetime, *, day_0_known: bool = False) -> None:
    """(Re)plan the open clocks of a version from the rules that apply now. A clock already met stays; an
    open clock whose rule no longer applies (a case found not serious after all) is removed; a new rule
    (the case turned out fatal) adds its clock, counted from the version's receipt date.

    A reportable case that does not meet the four minimum criteria yet has no day 0 (个例药品不良反应收集和报告指导原则,
    ICH E2D: the clock starts when the minimum information is received): it gets no clock until the version that
    makes it valid — a follow-up, counted from its receipt, or a correction, counted from the current version's.
    `day_0_known`: the version holds clocks planned while the case was valid, which an edit that emptied a criterion
    since has not taken away (_replan_stale): it is planned as a valid case's."""
    if reportable(case) and not case.valid and not day_0_known:
        return  # (a case made invalid by a mistaken edit keeps the clocks it had: they stay owed)
    # a death is reported at once, once: the follow-up of a death an earlier version told of (the autopsy, the
    # hospital's records) is new information on a serious case, due as such from its receipt — not in 24 hours again
    death_told = SafetyClock.objects.filter(
        case=case, kind=ClockKind.REPORT, rule__condition__in=DEATH_CONDITIONS
    ).exclude(case_version=version).exists()
    wanted = {rule.pk: rule for rule in rules_for(case, death_told=death_told)} if reportable(case) else {}
    current = {c.rule_id: c for c in version.clocks.filter(kind__in=[ClockKind.REPORT, ClockKind.INVESTIGATION])}
    for rule_id, clock in current.items():
        if rule_id not in wanted and clock.met_at is None:
            clock.delete()
    if case.status in (CaseStatus.CLOSED, CaseStatus.NULLIFIED):
        return
    # a death is investigated once: the 15-day investigation report runs from the version that first told of the
    # death, and a follow-up (the autopsy, the hospital's records) brings a report of its own, not a second one
    investigated = set(
        SafetyClock.objects.filter(case=case, kind=ClockKind.INVESTIGATION).exclude(case_version=version)
        .values_list("rule_id", flat=True)
    )  # fmt: skip
    for rule_id, rule in wanted.items():
        if rule_id in current or (rule.clock_kind == ClockKind.INVESTIGATION and rule_id in investigated):
            continue
        start = version.received_at
        due = _due(rule, start)
        clock = SafetyClock(
            kind=rule.clock_kind, case=case, case_version=version, rule=rule, jurisdiction=rule.jurisdiction,
            started_at=start, due_at=due, warn_at=_warn_at(start, due),
        )  # fmt: skip
        clock.next_check_at = _next_check(clock)
        clock.save()


def _open_clocks(case: SafetyCase, *, stopped: bool = False) -> list[str]:
    """The case's owed report and investigation clocks, "code due", for an audit entry saying how they moved
    (`stopped`: the stopped ones too — a closed case's, before reopening it)."""
    clocks = case.clocks.filter(kind__in=[ClockKind.REPORT, ClockKind.INVESTIGATION], met_at__isnull=True)
    if not stopped:
        clocks = clocks.filter(stopped_at__isnull=True)
    clocks = clocks.select_related("rule").order_by("due_at", "pk")
    return [f"{c.rule.code if c.rule else c.kind} {timezone.localtime(c.due_at).isoformat()}" for c in clocks]


# the audit entry's reason, in no language (the audit trail records data, not a reader's text)
FOREIGN_DEATH_REASON = ("safety 0014: a death abroad is a serious case from abroad (CN-FOREIGN-SERIOUS, 15 days); "
                        "the 24-hour report and the investigation are for deaths in China")  # fmt: skip


def replan_foreign_deaths(user=SYSTEM, *, reason: str = "") -> int:
    """The open cases from abroad still owing a death clock of a rule limited to deaths in its jurisdiction (safety
    0014: CN-DEATH and CN-DEATH-INVESTIGATION had applied to every death, wherever it occurred) planned again under
    the rules as they are now: the 24-hour report and the investigation report are gone, the serious case from
    abroad is due under the next rule that applies (CN-FOREIGN-SERIOUS, 15 days from the same receipt). A version
    whose report was already sent keeps it and owes no second one: only its investigation clock goes. Each case in
    its own short transaction, audited (the clocks before and after); run again, it changes nothing. Returns how
    many cases changed."""
    candidates = (
        SafetyClock.objects.filter(kind__in=[ClockKind.REPORT, ClockKind.INVESTIGATION], met_at__isnull=True,
                                   stopped_at__isnull=True, rule__condition=RuleCondition.DEATH_DOMESTIC)
        .exclude(case__status__in=[CaseStatus.CLOSED, CaseStatus.NULLIFIED])
        .values_list("case_id", flat=True).distinct()
    )  # fmt: skip
    changed = 0
    for pk in sorted(set(candidates)):
        now = timezone.now()
        with transaction.atomic():
            case = SafetyCase.objects.select_for_update().get(pk=pk)
            if case.status in (CaseStatus.CLOSED, CaseStatus.NULLIFIED):
                continue
            stale = [c for c in _stale_clocks(case) if c.stopped_at is None
                     and c.rule.condition == RuleCondition.DEATH_DOMESTIC
                     and not _applies(c.rule.condition, case, c.rule.jurisdiction)]  # fmt: skip
            if not stale:
                continue
            before = _open_clocks(case)
            _replan_stale(case, stale, now)
            after = _open_clocks(case)
            _record(A.UPDATE, case, user, changes={"clocks": [before, after]}, reason=reason)
            changed += 1
    return changed


def _stale_clocks(case: SafetyCase) -> list[SafetyClock]:
    """The case's unmet report and investigation clocks (running or stopped) that the rules as they are now no longer
    give it: a rule deactivated since, or whose condition no longer applies (safety 0014: CN-DEATH for a death abroad).
    None of a case that misses its reactions (an edit emptied them; the case is not valid): the rules go by them (is it
    serious, fatal, life-threatening?), so nothing tells which they give it — its clocks stay as they were, as through
    that edit (plan_clocks)."""
    if reportable(case) and not case.valid and Criterion.REACTION.value in (case.missing or ()):
        return []
    return [
        clock for clock in SafetyClock.objects.filter(
            case=case, kind__in=[ClockKind.REPORT, ClockKind.INVESTIGATION], met_at__isnull=True, rule__isnull=False,
        ).select_related("rule", "case_version")
        if not clock.rule.active or not _applies(clock.rule.condition, case, clock.rule.jurisdiction)
    ]  # fmt: skip


def _replan_stale(case: SafetyCase, stale: list[SafetyClock], now: dt.datetime) -> None:
    """Plan again, under the rules as they are now, each version holding a stale clock, earliest first (a version's
    plan depends on the clocks of the others: a death told once, investigated once). A version whose report was
    already sent keeps it and owes no second one: only its stale clocks go. (Of an open case: a closed one plans no
    new clock.) A case an edit has left without its reporter, patient or suspect product since those clocks started
    is planned all the same: it was valid then, its report stays owed — the one the rules give it now (a death abroad
    missing its reporter owes CN-FOREIGN-SERIOUS, not the 24-hour report, restarted as it was)."""
    for version in sorted({c.case_version for c in stale}, key=lambda v: v.sequence):
        reported = version.clocks.filter(kind=ClockKind.REPORT, met_at__isnull=False).exists()
        if reported:  # the report was sent: it stands; the clocks nobody owes go
            SafetyClock.objects.filter(pk__in=[c.pk for c in stale if c.case_version_id == version.pk]).delete()
        else:
            plan_clocks(case, version, now, day_0_known=True)


def _close_clocks(case: SafetyCase, now: dt.datetime) -> None:
    """A closed or nullified case stops its open clocks: no more reminders. They stay unmet (nothing was
    reported); reopening the case starts them again (_reopen_clocks)."""
    SafetyClock.objects.filter(case=case, met_at__isnull=True, stopped_at__isnull=True).update(
        stopped_at=now, next_check_at=None, claimed_until=None
    )


def _reopen_clocks(case: SafetyCase, now: dt.datetime) -> dict:
    """A reopened case (its status already the open one): its unmet clocks are watched again (overdue ones at once) —
    those the rules as they are now still give it. A clock the rules no longer give it (closed before safety 0014, a
    death abroad still holding CN-DEATH and CN-DEATH-INVESTIGATION) is not restarted: its version is planned again
    under the current rules, as an edit would (the death abroad owes CN-FOREIGN-SERIOUS from the same receipt; a
    version whose report was sent owes no second one). Returns the audit entry's changes: {"clocks": [the stopped
    clocks it held, the clocks open now]} when it re-planned, else {}."""
    stale = _stale_clocks(case)
    before = _open_clocks(case, stopped=True) if stale else []
    for clock in SafetyClock.objects.filter(case=case, met_at__isnull=True, stopped_at__isnull=False):
        clock.stopped_at = None
        clock.next_check_at = max(_next_check(clock) or now, now) if clock.breached_at is None else None
        clock.save(update_fields=["stopped_at", "next_check_at"])
    if not stale:
        return {}
    _replan_stale(case, stale, now)
    return {"clocks": [before, _open_clocks(case)]}


# --- cases ----------------------------------------------------------------------------------------------


def _write_rows(case: SafetyCase, drugs: list[dict] | None, reactions: list[dict] | None) -> None:
    if drugs is not None:
        case.drugs.all().delete()
        Drug.objects.bulk_create([Drug(case=case, position=i, **row) for i, row in enumerate(drugs)])
    if reactions is not None:
        case.reactions.all().delete()
        Reaction.objects.bulk_create([Reaction(case=case, position=i, **row) for i, row in enumerate(reactions)])


def _audit_changes(before: dict, after: dict) -> dict:
    """Field → [before, after] for plain fields, and "(changed)" for encrypted ones."""
    changes = {}
    for field, value in after.items():
        old = before.get(field)
        if old == value:
            continue
        changes[field] = "(changed)" if field in SECRET_FIELDS else [audit._jsonable(old), audit._jsonable(value)]
    return changes


def _snapshot(case: SafetyCase, fields: Iterable[str]) -> dict:
    return {f: getattr(case, f) for f in fields}


def _source_defaults(source) -> dict:
    """What a case opened from a ticket or an interaction takes from it: day 0, the reporter (the customer
    who told us), the product and batch."""
    from pharmacrm.customers.models import Person
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.servicedesk.models import Ticket

    data: dict = {"received_at": source.received_at}
    person: Person | None = getattr(source, "person", None)
    institution = getattr(source, "institution", None)
    if person is not None:
        data["reporter_name"] = person.name
        phones = [p for p in (getattr(person, "mobile", ""), getattr(person, "phone", "")) if p]
        data["reporter_contact"] = phones[0] if phones else (getattr(person, "email", "") or "")
        title, role = getattr(person, "title", "") or "", getattr(person, "role", "") or ""
        # the title first, in either script: a hospital's 主任药师 (chief pharmacist) is no physician for holding the
        # rank 主任, nor a 主治醫師 no physician for being written in Traditional characters; then the role
        if any(w in title for w in ("药师", "藥師", "药剂师", "藥劑師", "pharmacist")):
            data["reporter_qualification"] = Qualification.PHARMACIST
        elif any(w in title for w in ("医生", "醫生", "医师", "醫師", "physician", "doctor")):
            data["reporter_qualification"] = Qualification.PHYSICIAN
        elif role == "pharmacist":
            data["reporter_qualification"] = Qualification.PHARMACIST
        elif role == "doctor" or "主任" in title:
            data["reporter_qualification"] = Qualification.PHYSICIAN
    if institution is not None:
        data["reporter_institution"] = institution.name
    if isinstance(source, Ticket):
        if not data.get("reporter_name") and source.caller_name:
            data["reporter_name"] = source.caller_name
        if not data.get("reporter_contact") and source.caller_phone:
            data["reporter_contact"] = source.caller_phone
        data["narrative"] = f"{source.subject}\n{source.description}".strip()
        batch = source.batch_number
    elif isinstance(source, Interaction):
        data["narrative"] = f"{source.subject}\n{source.notes}".strip()
        batch = ""
    else:
        batch = ""
    product = getattr(source, "product", None)
    if product is not None:
        data["drugs"] = [{
            "role": DrugRole.SUSPECT, "product": product, "brand_name": product.brand_name,
            "generic_name": product.generic_name, "approval_number": product.approval_number,
            "dosage_form": product.dosage_form, "batch": batch,
        }]  # fmt: skip
    return data


def create_case(user, data: dict, *, source=None, flag: Flag | None = None, summary: str = "",
                heard_at: dt.datetime | None = None, as_sent: bool = False) -> SafetyCase:  # fmt: skip
    """Open a case. `data`: kind, received_at (day 0; from the source when there is one), and any case
    field, plus `drugs` and `reactions` (lists of dicts of their fields) and, for a quality complaint,
    `quality` (dict of QualityComplaint fields). `source`: the ticket or interaction it came from. `as_sent`: an
    incoming ICSR, whose MedDRA codes, doses and units are kept as its sender wrote them (_check_coded)."""
    require(user)
    now = timezone.now()
    if source is not None:
        defaults = _source_defaults(source)
        told = [line for line in (flag.excerpt if flag is not None else "").splitlines()
                if line.strip() and line not in defaults.get("narrative", "")]  # fmt: skip
        if told:
            # the words that told of the reaction (a later e-mail, a note, a revisit), not only the ticket's own
            defaults["narrative"] = "\n\n".join([defaults.get("narrative", ""), "\n".join(told)]).strip()
        data = {**defaults, **{k: v for k, v in data.items() if v not in (None, "")}}
        # a quality complaint starts with the product and batch the ticket names: QA needs them to investigate,
        # the batch trace to find who else received it, and the complaint to close
        named = {"product": getattr(source, "product", None), "batch": (getattr(source, "batch_number", "") or "")[:35]}
        data["quality"] = {**{k: v for k, v in named.items() if v}, **(data.get("quality") or {})}
        # day 0 is when the company heard it — the source's receipt, or the later message that first told
        # of the reaction (heard_at, from the flag) — whatever the form says
        data["received_at"] = heard_at or source.received_at
    errors: dict[str, list[str]] = {}
    received_at = data.get("received_at") or now
    if isinstance(received_at, str):
        try:
            received_at = dt.datetime.fromisoformat(received_at)
        except ValueError:
            errors["received_at"] = [_("Enter a date and time.")]
            received_at = now
    if isinstance(received_at, dt.date) and not isinstance(received_at, dt.datetime):
        received_at = dt.datetime.combine(received_at, dt.time(9, 0))
    if timezone.is_naive(received_at):
        received_at = timezone.make_aware(received_at)
    if received_at > now + dt.timedelta(minutes=5):
        errors["received_at"] = [_("The company cannot have heard of it in the future.")]
    if "kind" not in data:
        errors["kind"] = [_("Choose the kind of case.")]
    values = _clean_case_values(data, errors, as_sent=as_sent)
    _check_latest(values, received_at, errors)
    drugs = _clean_rows(data.get("drugs", []), Drug, DRUG_FIELDS, DRUG_CHOICES, "drugs", errors, as_sent=as_sent)
    reactions = _clean_rows(data.get("reactions", []), Reaction, REACTION_FIELDS, {"outcome": Outcome}, "reactions",
                            errors, as_sent=as_sent)  # fmt: skip
    quality = _clean_quality(data.get("quality") or {}, errors) if values.get("kind") == CaseKind.QUALITY else None
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        case = SafetyCase(
            number=next_number(values["kind"], received_at), received_at=received_at,
            latest_received_at=values.pop("latest_received_at", None) or received_at, created_by=_actor(user),
            owner=_actor(user) if access.can(_actor(user), Cap.HANDLE_SAFETY) else None, created_at=now,
            updated_at=now, **values,
        )  # fmt: skip
        if isinstance(source, _ticket_model()):
            case.source_ticket = source
        elif source is not None:
            case.source_interaction = source
        _save_case(case)
        _write_rows(case, drugs, reactions)
        if quality is not None:
            QualityComplaint.objects.create(case=case, **quality)
        version = CaseVersion.objects.create(
            case=case, sequence=0, received_at=received_at, summary=summary or _("Initial report"), created_by=_actor(user),
            created_at=now,
        )  # fmt: skip
        refresh_derived(case)
        case.save(update_fields=["serious", "fatal", "valid", "missing"])
        plan_clocks(case, version, now)
        _sync_follow_up_task(case, now)
        if flag is not None:
            flag.case = case
        _record(A.CREATE, case, user, kind=case.kind, source=_source_code(source),
                fields=sorted(k for k in values if values[k] not in ("", None)),
                drugs=len(drugs or []), reactions=len(reactions or []))  # fmt: skip
    return case


def _save_case(case: SafetyCase) -> None:
    """Save, turning a second case with the same worldwide id into a clear error on that field."""
    try:
        with transaction.atomic():
            case.save()
    except IntegrityError:
        if case.worldwide_id and SafetyCase.objects.filter(worldwide_id=case.worldwide_id).exclude(pk=case.pk).exists():
            raise ValidationError({"worldwide_id": [
                _("A case with the worldwide id %(id)s exists already: add this report as its follow-up.")
                % {"id": case.worldwide_id}
            ]}) from None  # fmt: skip
        raise


def _ticket_model():
    from pharmacrm.servicedesk.models import Ticket

    return Ticket


def _source_code(source) -> str:
    """A case's or flag's source as audit entries record it, in no language: the ticket number, else
    "interaction <id>" (the audit viewer translates it)."""
    if source is None:
        return ""
    return getattr(source, "number", "") or f"interaction {source.pk}"


def _source_label(source) -> str:
    """A case's or flag's source as pages and notifications name it: the ticket number, else the translated
    "Interaction <id>" (as the triage queue names it)."""
    if source is None:
        return ""
    return str(_source_text(source))


def _source_text(source):
    """`_source_label` as a text each reader reads in their own language (notifications)."""
    if source is None:
        return ""
    return getattr(source, "number", "") or Message(gettext_lazy("Interaction %(id)s"), id=source.pk)


def _lock(case: SafetyCase, version: int | None) -> SafetyCase:
    fresh = SafetyCase.objects.select_for_update().get(pk=case.pk)
    # a garbled version (not a number) is as stale as an old one
    if version is not None and (not is_id(version) or int(version) != fresh.version):
        raise ConflictError(fresh.version)
    return fresh


def update_case(user, case: SafetyCase, data: dict, *, version: int | None = None) -> SafetyCase:
    """Correct or complete the current version of a case (not new information from the reporter: that is a
    follow-up, add_follow_up). `drugs`/`reactions`, when given, replace the lists."""
    require(user)
    errors: dict[str, list[str]] = {}
    values = _clean_case_values({k: v for k, v in data.items() if k != "kind" or v}, errors)
    _check_latest(values, case.received_at, errors, case.latest_received_at, case)
    drugs = _clean_rows(data.get("drugs"), Drug, DRUG_FIELDS, DRUG_CHOICES, "drugs", errors)
    reactions = _clean_rows(data.get("reactions"), Reaction, REACTION_FIELDS, {"outcome": Outcome}, "reactions",
                            errors)  # fmt: skip
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        case = _lock(case, version)
        if case.status in (CaseStatus.CLOSED, CaseStatus.NULLIFIED):
            raise ValidationError({"status": [_("A closed case cannot be changed; reopen it first.")]})
        before = _snapshot(case, values)
        clocks_before = _open_clocks(case)
        for field, value in values.items():
            setattr(case, field, value)
        changes = _audit_changes(before, values)
        if "literature" in values:
            changes.update(_relink_copies(case, before.get("literature", ""), values["literature"]))
        if drugs is not None:
            changes["drugs"] = len(drugs)
        if reactions is not None:
            changes["reactions"] = len(reactions)
        _write_rows(case, drugs, reactions)
        refresh_derived(case)
        case.version += 1
        case.updated_at = now
        if case.status == CaseStatus.NEW and case.owner_id is None and _actor(user):
            case.owner = user
        if case.status == CaseStatus.NEW:
            case.status = CaseStatus.ASSESSING
        _save_case(case)
        # a correction says what the case was all along: every version still owed a report is re-planned from its
        # own receipt, not only the latest — a case found serious on review of the initial report, after a follow-up,
        # was due 15 days from that report (its 30-day clock said "due in 10 days" when it was overdue already), and
        # one found not serious after all is no 15-day case from its first receipt either
        owed = case.versions.filter(clocks__kind=ClockKind.REPORT, clocks__met_at__isnull=True,
                                    clocks__stopped_at__isnull=True).distinct()  # fmt: skip
        latest = case.versions.order_by("-sequence").first()
        for each in sorted({*owed, latest}, key=lambda v: v.sequence):
            plan_clocks(case, each, now)
        if case.status == CaseStatus.SUBMITTED and case.clocks.filter(
            kind=ClockKind.REPORT, met_at__isnull=True, stopped_at__isnull=True
        ).exists():  # corrected into a case with a report still owed (found serious): not "submitted" any more
            changes["status"] = [case.status, CaseStatus.ASSESSING]
            case.status = CaseStatus.ASSESSING
            case.save(update_fields=["status"])
        clocks_after = _open_clocks(case)
        if clocks_after != clocks_before:  # (a case found serious, or its country corrected: what it owes moved)
            changes["clocks"] = [clocks_before, clocks_after]
        _sync_follow_up_task(case, now)
        _record(A.UPDATE, case, user, changes=changes)
    return case


def _moment(value, errors: dict, field: str) -> dt.datetime | None:
    """A date and time typed or sent (ISO text, a datetime, a date at 09:00), aware; None with an error if not one."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            value = None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(9, 0))
    if not isinstance(value, dt.datetime):
        errors[field] = [_("Enter a date and time.")]
        return None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def correct_day_0(user, case: SafetyCase, *, received_at, reason: str, otp_code: str,
                  version: int | None = None) -> SafetyCase:  # fmt: skip
    """Correct day 0 (C.1.4, when the company first heard of the case) typed wrong — the only way it changes: with
    a reason and the PV officer's electronic signature, audited (before, after, the reason, the signature). The
    clocks of the initial report are counted again from the corrected day 0 (as when an assessment changes: an
    overdue clock moved later is no longer overdue and is warned of again; a met one stays met, and the submission
    that met it is late or on time against the corrected deadline). Refused: a day 0 in the future, after a
    follow-up's receipt or the most recent information, or after a report recorded as sent."""
    require(user)
    errors: dict[str, list[str]] = {}
    new = _moment(received_at, errors, "received_at")
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = [_("Say why day 0 is corrected (e.g. the date was mistyped).")]
    elif len(reason) > 2000:
        errors["reason"] = [_("At most %(limit)d characters.") % {"limit": 2000}]
    if errors:
        raise ValidationError(errors)

    def check(case: SafetyCase) -> None:
        problems: list[str] = []
        first_follow_up = case.versions.filter(sequence__gt=0).order_by("received_at").first()
        sent = case.submissions.order_by("submitted_at").first()
        if new > timezone.now() + dt.timedelta(minutes=5):
            problems.append(_("The company cannot have heard of it in the future."))
        elif first_follow_up is not None and new > first_follow_up.received_at:
            problems.append(_("Day 0 cannot be after the follow-up received %(date)s.") % {
                "date": timezone.localtime(first_follow_up.received_at).strftime("%Y-%m-%d %H:%M")})
        elif sent is not None and new > sent.submitted_at:
            problems.append(_("Day 0 cannot be after the report recorded as sent %(date)s.") % {
                "date": timezone.localtime(sent.submitted_at).strftime("%Y-%m-%d %H:%M")})
        elif first_follow_up is None and case.latest_received_at != case.received_at and new > case.latest_received_at:
            problems.append(_("Day 0 cannot be after the most recent information (%(date)s).") % {
                "date": timezone.localtime(case.latest_received_at).strftime("%Y-%m-%d %H:%M")})
        elif new == case.received_at:
            problems.append(_("This is day 0 already."))
        if problems:
            raise ValidationError({"received_at": problems})

    check(case)  # before the code is used: a refused correction does not spend the officer's code
    signatures.verify(user, otp_code, signatures.Meaning.APPROVED, case)
    now = timezone.now()
    with transaction.atomic():
        case = _lock(case, version)
        check(case)
        old = case.received_at
        sig = signatures.record(user, signatures.Meaning.APPROVED, case, reason=reason,
                                label=_("Day 0 corrected") + f" {case.number}")  # fmt: skip
        fields = ["received_at", "version", "updated_at"]
        if case.latest_received_at == old and not case.versions.filter(sequence__gt=0).exists():
            case.latest_received_at = new  # C.1.5 was day 0 itself: it moves with it
            fields.append("latest_received_at")
        case.received_at = new
        case.version += 1
        case.updated_at = now
        case.save(update_fields=fields)
        initial = case.versions.filter(sequence=0).first()
        if initial is not None:
            initial.received_at = new
            initial.save(update_fields=["received_at"])
        clocks = _recount_clocks(case, initial, now) if initial is not None else []
        _record(A.UPDATE, case, user, changes={"received_at": [old, new]}, reason=reason, signature_id=sig.pk,
                clocks=clocks)  # fmt: skip
    return case


def _recount_clocks(case: SafetyCase, version: CaseVersion, now: dt.datetime) -> list[dict]:
    """The report and investigation clocks of `version` counted from its receipt again (day 0 corrected); what
    moved, for the audit entry."""
    moved = []
    for clock in version.clocks.filter(kind__in=[ClockKind.REPORT, ClockKind.INVESTIGATION]).select_related("rule"):
        before = clock.due_at
        start = version.received_at
        due = _due(clock.rule, start) if clock.rule is not None else clock.due_at + (start - clock.started_at)
        clock.started_at, clock.due_at, clock.warn_at = start, due, _warn_at(start, due)
        if clock.met_at is None:
            if clock.breached_at is not None and due > now:
                clock.breached_at = None  # moved later: not overdue any more
            if clock.warned_at is not None and clock.warn_at > now:
                clock.warned_at = None  # to be warned of again when that moment comes
            clock.next_check_at = None if clock.stopped_at else _next_check(clock)
        clock.save(update_fields=["started_at", "due_at", "warn_at", "breached_at", "warned_at", "next_check_at"])
        for submission in Submission.objects.filter(clock=clock):
            late_by = submission.submitted_at - due if submission.submitted_at > due else None
            submission.late = late_by is not None
            submission.delay_days = _days(late_by) if late_by is not None else 0
            submission.save(update_fields=["late", "delay_days"])
        moved.append({"clock": clock.pk, "rule": clock.rule.code if clock.rule else "", "due": [before, due]})
    return moved


def add_follow_up(user, case: SafetyCase, data: dict, *, received_at: dt.datetime, summary: str = "",
                  version: int | None = None, as_sent: bool = False) -> CaseVersion:  # fmt: skip
    """New information about the case (from the reporter, a hospital, a partner): a new version that
    records what changed and when it was received, with its own reporting clocks from that date. `as_sent`: an
    incoming ICSR's, kept as its sender wrote it (as create_case)."""
    require(user)
    errors: dict[str, list[str]] = {}
    now = timezone.now()
    if received_at is None:
        errors["received_at"] = [_("Say when the follow-up information was received.")]
    elif received_at > now + dt.timedelta(minutes=5):
        errors["received_at"] = [_("A follow-up cannot be received in the future.")]
    elif received_at < case.received_at:
        errors["received_at"] = [_("A follow-up cannot be received before the initial report.")]
    values = _clean_case_values({k: v for k, v in data.items() if k != "kind" or v}, errors, as_sent=as_sent)
    _check_latest(values, case.received_at, errors, case.latest_received_at, case)
    drugs = _clean_rows(data.get("drugs"), Drug, DRUG_FIELDS, DRUG_CHOICES, "drugs", errors, as_sent=as_sent)
    reactions = _clean_rows(data.get("reactions"), Reaction, REACTION_FIELDS, {"outcome": Outcome}, "reactions",
                            errors, as_sent=as_sent)  # fmt: skip
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        case = _lock(case, version)
        if case.status == CaseStatus.NULLIFIED:
            raise ValidationError({"status": [_("A nullified case takes no follow-up.")]})
        before = _snapshot(case, values)
        for field, value in values.items():
            setattr(case, field, value)
        changed = sorted(f for f in values if before.get(f) != values[f])
        relinked = _relink_copies(case, before["literature"], values["literature"]) if "literature" in values else {}
        if drugs is not None and _rows_differ(case.drugs.all(), drugs, DRUG_FIELDS):
            changed.append("drugs")
        if reactions is not None and _rows_differ(case.reactions.all(), reactions, REACTION_FIELDS):
            changed.append("reactions")
        if not changed and not (summary or "").strip():
            raise ValidationError({"summary": [_("This follow-up changes nothing: say what is new.")]})
        reopened = case.status == CaseStatus.CLOSED
        if reopened and not (summary or "").strip():
            # it reopens the case, which is closed (with its batch, outcome and recall decision) until someone says why
            raise ValidationError({"summary": [_("The case is closed: say what is new, the reason it is reopened.")]})
        _write_rows(case, drugs if "drugs" in changed else None, reactions if "reactions" in changed else None)
        sequence = case.versions.count()
        follow = CaseVersion.objects.create(
            case=case, sequence=sequence, received_at=received_at, summary=(summary or "").strip(),
            changes=changed, created_by=_actor(user), created_at=now,
        )  # fmt: skip
        case.latest_received_at = max(case.latest_received_at, received_at)
        refresh_derived(case)
        old = case.status
        if case.status in (CaseStatus.SUBMITTED, CaseStatus.CLOSED):
            case.status = CaseStatus.ASSESSING  # new information to report
        case.version += 1
        case.updated_at = now
        _save_case(case)
        # as a reopened case's: what was still owed when it was closed, and the rules still give it, is owed again
        replanned = _reopen_clocks(case, now) if reopened else {}
        plan_clocks(case, follow, now)
        _sync_follow_up_task(case, now)
        extra = {"changes": {"status": [old, case.status], **replanned}, "reason": follow.summary} if reopened else {}
        if relinked:
            extra.setdefault("changes", {}).update(relinked)
        _record(A.UPDATE, case, user, follow_up=sequence, received_at=received_at, changed=changed, **extra)
    return follow


# the fields the four minimum criteria are made of (a follow-up's `changes` names them)
CRITERION_FIELDS = frozenset((
    "kind", "patient_name", "patient_sex", "patient_age", "patient_birth_date", "patient_record_number",
    "reporter_name", "reporter_contact", "reporter_institution", "reporter_qualification", "drugs", "reactions",
))  # fmt: skip
REVALIDATE_CHUNK = 200


def _criteria_known_since(case: SafetyCase) -> list[CaseVersion]:
    """The versions of a case that holds the minimum criteria, from the one they were first known with: the last
    follow-up that changed a field they are made of (a name, a qualification, a record number, a drug, a
    reaction), else the initial report. Where the record cannot tell more closely (a correction that added one
    between follow-ups), the earlier receipt: day 0 is never later than the data shows."""
    versions = list(case.versions.order_by("sequence"))
    start = 0
    for i, version in enumerate(versions):
        if CRITERION_FIELDS & set(version.changes or ()):
            start = i
    return versions[start:]


def revalidate(case: SafetyCase, user=SYSTEM, *, reason: str = "") -> bool:
    """Work out the validity of a stored case again under the minimum criteria as they are now (saved before the
    rule changed, it kept the validity of the old rule until its next edit): the missing criteria, and — for a case
    that is valid now — the regulatory clocks, each from the receipt of the version the criteria were first known
    with (plan_clocks, as saving the case plans them), and the follow-up task done. Locks the case; audited; a
    case whose validity and missing criteria are what they were is left alone (so running it again changes
    nothing). Returns whether the case changed."""
    now = timezone.now()
    with transaction.atomic():
        case = SafetyCase.objects.select_for_update().get(pk=case.pk)
        before = {"valid": case.valid, "missing": list(case.missing or [])}
        refresh_derived(case)
        after = {"valid": case.valid, "missing": case.missing}
        if after == before:
            return False
        case.save(update_fields=["serious", "fatal", "valid", "missing"])
        if case.valid:
            for version in _criteria_known_since(case):
                plan_clocks(case, version, now)
        _sync_follow_up_task(case, now)
        _record(A.UPDATE, case, user, changes=_audit_changes(before, after), reason=reason)
    return True


def revalidate_invalid_cases(user=SYSTEM, *, reason: str = "", chunk: int = REVALIDATE_CHUNK) -> int:
    """`revalidate` every case stored as invalid, a chunk of ids at a time (each case in its own short transaction:
    a big table is never locked at once, and a run stopped midway is simply run again). Returns how many
    changed."""
    changed, last = 0, 0
    while True:
        ids = list(SafetyCase.objects.filter(valid=False, pk__gt=last).order_by("pk").values_list("pk", flat=True)
                   [:chunk])  # fmt: skip
        if not ids:
            return changed
        for pk in ids:
            changed += revalidate(SafetyCase(pk=pk), user, reason=reason)
        last = ids[-1]


def _rows_differ(existing, new: list[dict], fields: tuple) -> bool:
    old = [{f: getattr(row, f if f != "product" else "product") for f in fields} for row in existing]
    return len(old) != len(new) or any(
        any(o.get(f) != n.get(f, o.get(f)) for f in n) for o, n in zip(old, new, strict=True)
    )


def set_status(user, case: SafetyCase, status: str, *, reason: str = "", version: int | None = None) -> SafetyCase:
    """Close, nullify or reopen a case. A quality complaint closes only with its batch, the investigation
    outcome and the recall decision; a reportable case closes only when reported or with a reason."""
    require(user)
    if status not in SETTABLE_STATUSES:  # "submitted" only through record_submission, with a signature
        raise ValidationError({"status": [_("Choose closed, nullified, or reopen the case.")]})
    now = timezone.now()
    with transaction.atomic():
        case = SafetyCase.objects.select_for_update().get(pk=case.pk)
        if version is not None and (not is_id(version) or int(version) != case.version):
            if case.status == status and sent_again_after(user, case, version):
                return case  # the same change sent twice (a double click): made the first time, not a conflict
            raise ConflictError(case.version)  # (a colleague's change in between, even to this status, is one)
        old = case.status
        changes: dict = {"status": [old, status]}
        if status == CaseStatus.CLOSED:
            problems = closing_problems(case)
            if problems.pop("_report", None) and not (reason or "").strip():
                problems["reason"] = [_("The case has reports still due: report it, or say why it is closed "
                                        "without a report.")]  # fmt: skip
            if problems:
                raise ValidationError(problems)
            _close_clocks(case, now)
        elif status == CaseStatus.NULLIFIED:
            if not (reason or "").strip():
                raise ValidationError({"reason": [_("Say why the case is nullified (e.g. a duplicate).")]})
            _close_clocks(case, now)
        elif status in (CaseStatus.ASSESSING, CaseStatus.NEW) and old in (CaseStatus.CLOSED, CaseStatus.NULLIFIED):
            if not (reason or "").strip():
                raise ValidationError({"reason": [_("Say why the case is reopened.")]})
            case.status = status  # (open before its clocks are re-planned: a closed case plans none)
            changes.update(_reopen_clocks(case, now))
        case.status = status
        case.version += 1
        case.updated_at = now
        case.save(update_fields=["status", "version", "updated_at"])
        _record(A.UPDATE, case, user, changes=changes, reason=reason)
    return case


SETTABLE_STATUSES = (CaseStatus.CLOSED, CaseStatus.NULLIFIED, CaseStatus.ASSESSING, CaseStatus.NEW)


def closing_problems(case: SafetyCase) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    quality = getattr(case, "quality", None) if hasattr(case, "quality") else None
    if case.kind == CaseKind.QUALITY or quality is not None:
        q = QualityComplaint.objects.filter(case=case).first()
        if q is None or not q.batch:
            problems["batch"] = [_("A quality complaint closes only with the batch / lot number.")]
        if q is None or not q.investigation_outcome.strip():
            problems["investigation_outcome"] = [_("A quality complaint closes only with the investigation outcome.")]
        if q is None or not q.recall_decision:
            problems["recall_decision"] = [_("A quality complaint closes only with a recall decision.")]
    # the death investigation report (15 days) is owed to the regulator like the report itself
    if case.clocks.filter(met_at__isnull=True, kind__in=[ClockKind.REPORT, ClockKind.INVESTIGATION]).exists():
        problems["_report"] = ["due"]
    return problems


def add_file(user, case: SafetyCase, upload) -> CaseFile:
    """Keep a photo or document on a case: checked by its content like ticket attachments (type and size),
    stored under a random name, audited."""
    require(user)
    from django.core.files.base import ContentFile

    from pharmacrm.servicedesk import attachments

    name, kind = attachments.validate_upload(upload)
    upload.seek(0)
    data = upload.read()
    case_file = CaseFile(case=case, name=name, content_type=kind, size=len(data), uploaded_by=user)
    case_file.file.save(name, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            case_file.save(force_insert=True)
            audit.record(A.CREATE, case_file, user=user, case=case.number, name=name, size=len(data))
    except Exception:
        case_file.file.delete(save=False)
        raise
    return case_file


# --- the copies of the articles (C.4.r.2) -----------------------------------------------------------------

# The copy travels inside the ICSR as one base64 text (C.4.r.2). The ICH IG leaves the size of attachments to each
# region and none of the regional rules shipped here states one; what bounds it is the XML parser: libxml2 (lxml)
# refuses a text node over 10,000,000 characters unless its safety limits are switched off — which an importer of
# files from outside must not do, ours included. 7 MB of PDF is 9.9 million characters of base64 with its line
# breaks: the largest copy a receiver (and our own import) can read back.
LITERATURE_COPY_MAX_BYTES = 7 * 1024 * 1024
LITERATURE_COPY_TYPES = {"application/pdf"}  # ICH: the article (PDF, as EMA and FDA ask for literature articles)


def literature_copy_limit() -> int:
    from django.conf import settings

    return min(settings.ATTACHMENT_MAX_BYTES, LITERATURE_COPY_MAX_BYTES)


def literature_references(case: SafetyCase) -> list[str]:
    return [line for line in (case.literature or "").splitlines() if line.strip()]


def literature_copies(case: SafetyCase) -> dict[str, CaseFile]:
    """{literature reference: the copy of its article} of the case."""
    return {f.literature: f for f in case.files.all() if f.literature}


def check_literature_copy(name: str, data: bytes, *, field: str = "copy") -> tuple[str, str]:
    """(clean name, content type) of an acceptable copy of an article: checked by its content like every upload,
    a PDF, within the size an ICSR can carry; ValidationError on `field` naming the file otherwise."""
    from pharmacrm.servicedesk import attachments

    try:
        display, kind = attachments.check(name, data)
    except ValidationError as exc:
        raise ValidationError({field: exc.message_dict.get("files", exc.messages)}) from None
    if kind not in LITERATURE_COPY_TYPES:
        raise ValidationError({field: [_("“%(name)s”: the copy of an article is sent as a PDF.") % {"name": display}]})
    if len(data) > literature_copy_limit():
        raise _copy_too_large(display, field)
    return display, kind


def _copy_too_large(name: str, field: str = "copy") -> ValidationError:
    from django.template.defaultfilters import filesizeformat

    return ValidationError({field: [
        _("“%(name)s”: the copy of an article travels inside the ICSR, which carries at most %(max)s.")
        % {"name": name, "max": filesizeformat(literature_copy_limit())}
    ]})  # fmt: skip


def _reference_number(case: SafetyCase, reference) -> str:
    """The text of the case's literature reference number `reference` (1, 2, …), or ValidationError."""
    references = literature_references(case)
    try:
        n = int(str(reference).strip())
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= len(references):
        raise ValidationError({"reference": [
            _("Choose one of the case's literature references (1 to %(count)d).") % {"count": len(references)}
            if references else _("The case has no literature reference yet: enter it first (one a line).")
        ]})  # fmt: skip
    return references[n - 1]


def attach_literature_copy(user, case: SafetyCase, reference, upload=None, *, name: str = "", data: bytes | None = None,
                           version: int | None = None) -> CaseFile:  # fmt: skip
    """Keep the copy of the article of the case's literature reference number `reference` (C.4.r.2): a PDF,
    checked by its content, stored like every case file (var/files, readable by the service only, served through
    the PV check), audited. It replaces the
    reference's earlier copy (whose file is deleted once the transaction is through) — unless that copy is this one
    already (the same name and content: the form or the upload sent twice), which is kept as it is, nothing audited
    again: the copy answered then has `again` set."""
    require(user)
    from django.core.files.base import ContentFile

    from pharmacrm.servicedesk import attachments

    if upload is not None:
        name = getattr(upload, "name", "")
        if (getattr(upload, "size", None) or 0) > literature_copy_limit():  # refused before it is read
            raise _copy_too_large(attachments.clean_name(name))
        data = attachments._read(upload)
    display, kind = check_literature_copy(name, data or b"")
    text = _reference_number(case, reference)
    copy = CaseFile(case=case, name=display, content_type=kind, size=len(data), uploaded_by=_actor(user),
                    literature=text)  # fmt: skip
    copy.file.save(display, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            locked = _lock(case, version)
            if locked.status in (CaseStatus.CLOSED, CaseStatus.NULLIFIED):
                raise ValidationError({"status": [_("A closed case cannot be changed; reopen it first.")]})
            if text not in literature_references(locked):  # changed meanwhile
                raise ValidationError({"reference": [_("The literature references changed meanwhile: check them and "
                                                       "attach the copy again.")]})  # fmt: skip
            old = list(CaseFile.objects.select_for_update().filter(case=locked, literature=text))
            if len(old) == 1 and _same_file(old[0], display, data):  # sent again: the first sending's copy stands
                copy.file.delete(save=False)
                old[0].again = True
                return old[0]
            copy.save(force_insert=True)
            for each in old:
                _record(A.DELETE, each, user, case=case.number, name=each.name, size=each.size, replaced_by=display)
                each.delete()
                transaction.on_commit(lambda f=each.file.name: f and CaseFile.file.field.storage.delete(f))
            _record(A.CREATE, copy, user, case=case.number, name=display, size=len(data), literature=text)
    except Exception:
        copy.file.delete(save=False)
        raise
    return copy


def _same_file(case_file: CaseFile, name: str, data: bytes) -> bool:
    """Whether the stored case file is `data` under `name` (a copy sent a second time)."""
    if case_file.name != name or case_file.size != len(data):
        return False
    try:
        with case_file.file.open("rb") as handle:
            return handle.read() == data
    except OSError:  # its file is gone: the copy sent again puts it back
        return False


def _relink_copies(case: SafetyCase, old_text: str, new_text: str) -> dict:
    """After the literature references changed: a copy follows its reference — to its corrected wording when the
    reference was edited in its place, and it becomes a document the sender holds (C.1.6.1.r) when the reference is
    gone. Returns the audit changes."""
    old = [line for line in (old_text or "").splitlines() if line.strip()]
    new = [line for line in (new_text or "").splitlines() if line.strip()]
    if old == new:
        return {}
    changes = {}
    for copy in CaseFile.objects.filter(case=case).exclude(literature=""):
        if copy.literature in new:
            continue
        target = ""
        if len(old) == len(new) and copy.literature in old:
            target = new[old.index(copy.literature)]
        CaseFile.objects.filter(pk=copy.pk).update(literature=target)
        changes[f"copy {copy.name}"] = [copy.literature, target]
    return changes


# --- submissions, exports, acknowledgements --------------------------------------------------------------


REPORTS = ("", "amendment", "nullification")  # C.1.11.1: a report, or 2 an amendment, 1 a nullification


def _sent_before(case: SafetyCase) -> bool:
    """Whether an ICSR of the case went out before: a batch kept for it, or a submission recorded."""
    return IcsrMessage.objects.filter(case=case).exists() or Submission.objects.filter(case=case).exists()


def _check_report(cases: list[SafetyCase], report: str, reason: str) -> None:
    """An amendment or a nullification (C.1.11.1) needs its reason (C.1.11.2, 2000 characters at most) and an ICSR
    sent before ("an initial report cannot be a nullified or amended report", ICH; FDA rejects it, R0101); a nullified
    case is exported only as its nullification."""
    errors: dict[str, list[str]] = {}
    if report not in REPORTS:
        errors["report"] = [_("“%(value)s” is not one of the allowed values.") % {"value": report}]
    elif report:
        if not reason:
            errors["reason"] = [_("Say why the report is amended or nullified (C.1.11.2).")]
        elif len(reason) > 2000:
            errors["reason"] = [_("At most %(limit)d characters (this has %(count)d).")
                                % {"limit": 2000, "count": len(reason)}]  # fmt: skip
        unsent = [c.number for c in cases if not _sent_before(c)]
        if unsent:
            errors["report"] = [_("%(numbers)s: no report of it was sent yet, and an initial report cannot be an "
                                  "amendment or a nullification.") % {"numbers": ", ".join(unsent)}]  # fmt: skip
    if report != "nullification":
        nullified = [c.number for c in cases if c.status == CaseStatus.NULLIFIED]
        if nullified:
            errors.setdefault("cases", []).append(
                _("Nullified cases are exported only as their nullification report: %(numbers)s.")
                % {"numbers": ", ".join(nullified)}
            )
    if errors:
        raise ValidationError(errors)


def export_icsr(user, cases: list[SafetyCase], *, otp_code: str, purpose: str = "regulatory", report: str = "",
                reason: str = ""):  # fmt: skip
    """The E2B(R3) batch for `cases`, released only after the PV officer's electronic signature ("approved
    for export") and both checks (schema and business rules). Audited with the batch id. `report`: "amendment" (a
    corrected report without new information, C.1.11.1 = 2) or "nullification" (the case is void: C.1.11.1 = 1, and
    the case is nullified, its clocks stopped), each with its `reason` (C.1.11.2)."""
    from .e2b import export

    require(user)
    if not cases:
        raise ValidationError({"cases": [_("Choose at least one case.")]})
    reason = (reason or "").strip()
    # the same export sent again right after (a double click, its code used by the first): the first one's file
    if (first := _exported_with(user, cases, otp_code, purpose, report or "", reason)) is not None:
        return first
    _check_report(cases, report or "", reason)
    export.release(cases, purpose=purpose, report=report, reason=reason)  # ExportRefused lists what to fill in
    label = ", ".join(c.number for c in cases)[:200]
    try:
        sig = signatures.sign(user, otp_code, signatures.Meaning.APPROVED_FOR_EXPORT, cases[0], label=label)
    except ValidationError:
        # its code refused as used: the first sending, at the same moment, used it (and is exporting)
        if (first := _exported_with(user, cases, otp_code, purpose, report or "", reason)) is not None:
            return first
        raise
    with transaction.atomic():
        if report == "nullification":
            for case in cases:
                if case.status != CaseStatus.NULLIFIED:
                    set_status(user, case, CaseStatus.NULLIFIED, reason=reason)
        return issue_icsr_batch(user, cases, purpose=purpose, report=report, reason=reason, signature_id=sig.pk)


def _exported_with(user, cases: list[SafetyCase], otp_code: str, purpose: str, report: str, reason: str):
    """The export the user signed a moment ago with this one-time code, of these cases with this purpose, report and
    reason (signatures.signed_again): a form or request sent twice. Its batch file as it was released, not a second
    export: no signature, no batch, no audit entry. None when there is none — a new code, other cases or options:
    a deliberate export. Waits for a first sending still exporting (the cases' lock)."""
    from .e2b import export

    sig = signatures.signed_again(user, otp_code, signatures.Meaning.APPROVED_FOR_EXPORT)
    if sig is None or sig.object_type != SafetyCase._meta.label_lower or sig.object_id != str(cases[0].pk):
        return None
    with transaction.atomic():
        list(SafetyCase.objects.select_for_update().filter(pk__in=[c.pk for c in cases]).values_list("pk", flat=True))
        entry = (AuditEntry.objects.filter(action=A.EXPORT, actor_id=user.pk, object_type=sig.object_type,
                                           object_id=sig.object_id, extra__signature_id=sig.pk)
                 .order_by("-seq").first())  # fmt: skip
    extra = entry.extra if entry is not None and isinstance(entry.extra, dict) else {}
    asked = {"purpose": purpose, "report": report, "reason": reason, "cases": [c.number for c in cases]}
    if not extra or any(extra.get(k) != v for k, v in asked.items()):
        return None
    batch = IcsrBatch.objects.filter(batch_id=extra.get("message_id")).prefetch_related("messages__case").first()
    if batch is None:
        return None
    result = export.Export(xml=batch.xml.encode(), message_id=batch.batch_id,
                           report_ids={m.case.number: m.message_id for m in batch.messages.all()})  # fmt: skip
    result.retransmission = bool(extra.get("retransmission"))
    result.again = True
    return result


def issue_icsr_batch(user, cases: list[SafetyCase], *, purpose: str, report: str = "", reason: str = "",
                     **audit_extra):  # fmt: skip
    """The batch file that leaves the company (the page, the API, the command line), under the ICH E2B(R3) IG's
    identifiers: each batch its own number (N.1.2), each ICSR of a case the same message identifier (N.2.r.1 =
    C.1.1) and a date of creation (C.1.2) later than any earlier ICSR of the case — the version a regulator keeps.
    The same cases exported again with nothing changed (a file lost on the way to the gateway) are the stored file
    again, batch number and dates included — unless a regulator acknowledged that batch: then it has it, and
    what is sent now is a new transmission with a new number. Kept (encrypted) and audited."""
    from .e2b import export

    with transaction.atomic():
        locked = list(SafetyCase.objects.select_for_update().filter(pk__in=[c.pk for c in cases]).order_by("pk"))
        by_pk = {c.pk: c for c in locked}
        cases = [by_pk[c.pk] for c in cases]  # as they are now, in the order asked for
        keep_report_ids(user, cases)
        digest = export.content_digest(cases, report=report, reason=reason, purpose=purpose)
        wanted = sorted(c.pk for c in cases)
        last = (IcsrBatch.objects.filter(messages__case=cases[0]).order_by("-created_at", "-pk")
                .prefetch_related("messages").first())  # fmt: skip
        again = (
            last is not None and last.purpose == purpose and last.content_digest == digest and last.report == report
            and sorted(m.case_id for m in last.messages.all()) == wanted
            and not Submission.objects.filter(message_id=last.batch_id).exclude(ack_status=AckStatus.PENDING).exists()
        )  # fmt: skip
        if again:
            result = export.Export(xml=last.xml.encode(), message_id=last.batch_id,
                                   report_ids={m.case.number: m.message_id for m in last.messages.all()})  # fmt: skip
        else:
            # C.1.2 orders the versions of an ICSR to the second: never the same as, nor before, an earlier one's
            now = timezone.now().replace(microsecond=0)
            latest = IcsrBatch.objects.filter(messages__case__in=cases).order_by("-created_at").first()
            if latest is not None and latest.created_at >= now:
                now = latest.created_at + dt.timedelta(seconds=1)
            batch_id = export.batch_message_id(now, Counter.allocate("safety:e2b-batch"))
            result = export.release(cases, purpose=purpose, message_id=batch_id, now=now, report=report,
                                    reason=reason)  # fmt: skip
            batch = IcsrBatch.objects.create(
                batch_id=batch_id, created_at=now, purpose=purpose, report=report, reason=reason,
                content_digest=digest,
                xml=result.xml.decode(), created_by=_actor(user),
                actor_name=user.name if isinstance(user, SystemActor) else "",
            )  # fmt: skip
            IcsrMessage.objects.bulk_create([
                IcsrMessage(batch=batch, case=c, message_id=result.report_ids[c.number],
                            case_version=c.versions.order_by("-sequence").first())
                for c in cases
            ])  # fmt: skip
        _record(A.EXPORT, cases[0], user, format="E2B(R3)", purpose=purpose, cases=[c.number for c in cases],
                message_id=result.message_id, retransmission=again, report=report, reason=reason,
                **audit_extra)  # fmt: skip
    result.retransmission = again
    return result


def keep_report_ids(user, cases: Iterable[SafetyCase]) -> None:
    """After an export: C.1.1 (the sender's safety report id) and C.1.8.1 (the worldwide case id) stay as that
    ICSR sent them. Put together from the country and the sender's code, they changed with a corrected country
    or a new SAFETY_SENDER_ORG_CODE, and the regulator took the follow-up for a new case; a partner's follow-up
    carrying the id is also found by it."""
    from .e2b import rules

    org = conf.sender_org_code()
    for case in cases:
        report_id = rules.safety_report_id(case, org)
        values = {}
        if not case.sender_case_id:
            values["sender_case_id"] = report_id
        if not case.worldwide_id and not SafetyCase.objects.filter(worldwide_id=report_id).exists():
            values["worldwide_id"] = report_id
        if not values:
            continue
        # the version moves: an edit form loaded before would send the ids back empty
        SafetyCase.objects.filter(pk=case.pk).update(**values, version=F("version") + 1)
        for field, value in values.items():
            setattr(case, field, value)
        _record(A.UPDATE, case, user, changes={f: ["", v] for f, v in values.items()})


def _clean_submission(data: dict, errors: dict) -> dict:
    out = {
        "jurisdiction": _clean_choice(data.get("jurisdiction") or Jurisdiction.CN, Jurisdiction, "jurisdiction",
                                      errors),  # fmt: skip
        "channel": _clean_choice(data.get("channel"), Channel, "channel", errors),
        "kind": _clean_choice(data.get("kind") or ClockKind.REPORT, ClockKind, "kind", errors),
        "message_id": str(data.get("message_id") or "").strip()[:100],
        "reference": str(data.get("reference") or "").strip()[:100],
        "late_reason": str(data.get("late_reason") or "").strip(),
    }
    if not out["channel"]:
        errors.setdefault("channel", []).append(_("Choose the gateway or channel the report went through."))
    submitted_at = data.get("submitted_at") or timezone.now()
    if isinstance(submitted_at, str):
        try:
            submitted_at = dt.datetime.fromisoformat(submitted_at)
        except ValueError:
            errors.setdefault("submitted_at", []).append(_("Enter a date and time."))
            submitted_at = timezone.now()
    if timezone.is_naive(submitted_at):
        submitted_at = timezone.make_aware(submitted_at)
    if submitted_at > timezone.now() + dt.timedelta(minutes=5):
        errors.setdefault("submitted_at", []).append(_("A submission cannot be in the future."))
    # to the second, as the deadlines are: a report sent at 23:59:59.4 on day 30 meets "by the end of day 30"
    out["submitted_at"] = submitted_at.replace(microsecond=0)
    return out


def _open_report_clocks(case: SafetyCase, kind: str, jurisdiction: str,
                        sent_at: dt.datetime | None = None) -> list[SafetyClock]:  # fmt: skip
    """The unmet clocks a report of `kind` to `jurisdiction` sent at `sent_at` meets: not those of a follow-up the
    company received only after the report went out (that information is still to be reported)."""
    clocks = case.clocks.filter(met_at__isnull=True, stopped_at__isnull=True, kind=kind, jurisdiction=jurisdiction)
    if sent_at is not None:
        clocks = clocks.filter(started_at__lte=sent_at)
    return list(clocks.order_by("due_at"))


def _late_by(clocks: list[SafetyClock], at: dt.datetime) -> dt.timedelta | None:
    return max((at - c.due_at for c in clocks if c.due_at < at), default=None)


def _days(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta / dt.timedelta(days=1)))


REPORT_STATES = {
    ("nullification", False): gettext_lazy("Nullification exported"),
    ("nullification", True): gettext_lazy("Nullification submitted"),
    ("amendment", False): gettext_lazy("Amendment exported"),
    ("amendment", True): gettext_lazy("Amendment submitted"),
}


def report_states(case_ids: Iterable[int]) -> dict[int, str]:
    """{case id: its latest amendment or nullification report (C.1.11.1) and whether its submission is recorded},
    as the case page shows it: "Nullification exported" until the officer records that it was sent. Two
    queries for a page of cases."""
    latest: dict[int, tuple[str, str]] = {}
    for case_id, report, batch_id in (
        IcsrMessage.objects.filter(case_id__in=list(case_ids), batch__report__in=["amendment", "nullification"])
        .order_by("batch__created_at", "batch_id").values_list("case_id", "batch__report", "batch__batch_id")
    ):  # fmt: skip
        latest[case_id] = (report, batch_id)
    if not latest:
        return {}
    sent = set(Submission.objects.filter(case_id__in=list(latest), message_id__in=[b for _r, b in latest.values()])
               .values_list("case_id", "message_id"))  # fmt: skip
    return {pk: str(REPORT_STATES[(report, (pk, batch) in sent)]) for pk, (report, batch) in latest.items()}


def last_report(case: SafetyCase) -> dict | None:
    """The case's latest report as its page shows it — the ICSR last exported (kept batch) or the submission last
    recorded, whichever is later: `kind` (initial, follow_up, amendment, nullification; C.1.11.1 and the version it
    carried), `state` (exported, submitted, acknowledged), `batch_number` (N.1.2), `exported_at`, `submitted_at`,
    `acknowledged_at`, `ack` (None before a submission; pending, accepted, rejected) and `ack_errors`. None for a
    case never reported. Two queries."""
    return last_reports([case.pk]).get(case.pk)


def last_reports(case_ids: Iterable[int]) -> dict[int, dict]:
    """{case id: last_report of the case} for the cases that were ever reported: two queries for a page of cases
    (the case list, page and API)."""
    ids = list(case_ids)
    messages: dict[int, list[IcsrMessage]] = {}
    submissions: dict[int, list[Submission]] = {}
    for message in (IcsrMessage.objects.filter(case_id__in=ids).select_related("batch", "case_version")
                    .order_by("-batch__created_at", "-batch_id")):  # fmt: skip
        messages.setdefault(message.case_id, []).append(message)
    for submission in (Submission.objects.filter(case_id__in=ids).select_related("case_version")
                       .order_by("-submitted_at", "-id")):  # fmt: skip
        submissions.setdefault(submission.case_id, []).append(submission)
    return {
        pk: _last_report(messages.get(pk, []), submissions.get(pk, []))
        for pk in ids if pk in messages or pk in submissions
    }


def _last_report(messages: list[IcsrMessage], submissions: list[Submission]) -> dict | None:
    """last_report of a case from its ICSR messages (newest batch first) and its submissions (newest first)."""
    if not messages and not submissions:
        return None
    latest = submissions[0] if submissions else None
    message = messages[0] if messages else None
    submission = None
    if message is not None:
        submission = next((s for s in submissions if s.message_id == message.batch.batch_id), None)
        since = submission.submitted_at if submission else message.batch.created_at
    kept = {m.batch.batch_id for m in messages}
    if latest is not None and (message is None or (
        latest is not submission and latest.submitted_at > since
        # once the last export is recorded as sent, only a report sent without an export from here comes after it:
        # the sending time is typed to the minute, and an earlier batch's, recorded with its seconds the same
        # minute, is not a later report
        and (submission is None or latest.message_id not in kept)
    )):  # fmt: skip
        # a submission recorded after the last export: of an earlier batch, or sent without one from here
        submission = latest
        message = next((m for m in messages if m.batch.batch_id == latest.message_id), None)
    version = message.case_version if message is not None else submission.case_version
    kind = "follow_up" if version is not None and version.sequence else "initial"
    if message is not None and message.batch.report:
        kind = message.batch.report
    exported_at = message.batch.created_at if message is not None else None
    batch_number = message.batch.batch_id if message is not None else submission.message_id
    if submission is None:
        state, ack = "exported", None
    else:
        ack = submission.ack_status
        state = "submitted" if ack == AckStatus.PENDING else "acknowledged"
    return {
        "kind": kind, "state": state, "batch_number": batch_number, "exported_at": exported_at,
        "submitted_at": submission.submitted_at if submission else None,
        "acknowledged_at": submission.ack_at if submission else None, "ack": ack,
        "ack_errors": list(submission.ack_errors or []) if submission else [],
    }  # fmt: skip


def nullification_batch(case: SafetyCase, message_id: str) -> IcsrBatch | None:
    """The kept nullification report of `case` whose batch number is `message_id`, if that is what was sent."""
    if not message_id:
        return None
    return IcsrBatch.objects.filter(batch_id=message_id, report="nullification", messages__case=case).first()


def _check_submittable(case: SafetyCase, kind: str, values: dict, clocks: list[SafetyClock]) -> None:
    if case.status == CaseStatus.NULLIFIED and nullification_batch(case, values["message_id"]) is not None:
        pass  # its nullification report (C.1.11.1 = 1) is what a nullified case sends: recorded like any report
    elif case.status in (CaseStatus.CLOSED, CaseStatus.NULLIFIED):
        raise ValidationError({"status": [_("A closed or nullified case is not reported: reopen it first.")]})
    elif kind == ClockKind.REPORT and case.kind != CaseKind.QUALITY and not case.valid:
        missing = ", ".join(str(Criterion(c).label) for c in case.missing)  # the criteria, not their codes
        raise ValidationError({"case": [_("Only a valid case can be reported: it still misses %(missing)s.")
                                        % {"missing": missing}]})  # fmt: skip
    earlier = case.submissions.filter(message_id=values["message_id"], jurisdiction=values["jurisdiction"],
                                      kind=kind).order_by("submitted_at").first() if values["message_id"] else None
    if earlier is not None:  # a gateway refuses a batch number it has received: the same batch recorded twice
        raise ValidationError({"message_id": [
            _("The submission of batch %(batch)s to this regulator was recorded already (%(at)s): it is recorded once.")
            % {"batch": values["message_id"], "at": timezone.localtime(earlier.submitted_at).strftime("%Y-%m-%d %H:%M")}
        ]})  # fmt: skip
    if values["submitted_at"] < case.received_at:  # a mistyped date would meet the clock "on time"
        day0 = timezone.localtime(case.received_at).strftime("%Y-%m-%d %H:%M")
        raise ValidationError({"submitted_at": [
            _("A report cannot be sent before the company heard of the case (%(day0)s).") % {"day0": day0}
        ]})  # fmt: skip
    late_by = _late_by(clocks, values["submitted_at"])
    if late_by is not None and not values["late_reason"]:
        raise ValidationError({"late_reason": [
            _("This report is %(days)d day(s) late: give the reason for the delay.") % {"days": _days(late_by)}
        ]})  # fmt: skip


def record_submission(user, case: SafetyCase, data: dict, *, otp_code: str, once=None) -> Submission:
    """Record that the case (its latest version) was sent: date, gateway or channel, message id. Needs the
    PV officer's electronic signature ("approved for submission"). Meets the open clocks of that kind and
    jurisdiction; a late one is marked with the delay and needs a reason. The code is checked before the
    transaction (a wrong code is audited and throttled even though nothing is written); everything else is
    checked again under the case's lock, so two officers submitting at once cannot both meet the clocks.
    `once(submission)` runs in the same transaction, under the lock: the page claims its form's one-time token
    there, so that the form sent twice at once records one submission (the second raises and writes nothing)."""
    require(user)
    errors: dict[str, list[str]] = {}
    values = _clean_submission(data, errors)
    if errors:
        raise ValidationError(errors)
    kind = values.pop("kind")
    submitted_at = values["submitted_at"]
    _check_submittable(case, kind, values, _open_report_clocks(case, kind, values["jurisdiction"], submitted_at))
    signatures.verify(user, otp_code, signatures.Meaning.APPROVED_FOR_SUBMISSION, case)
    with transaction.atomic():
        case = _lock(case, None)
        open_clocks = _open_report_clocks(case, kind, values["jurisdiction"], submitted_at)
        _check_submittable(case, kind, values, open_clocks)
        late_by = _late_by(open_clocks, submitted_at)
        sig = signatures.record(user, signatures.Meaning.APPROVED_FOR_SUBMISSION, case)
        # the version it reported: the latest the company had when the report was sent
        latest = (case.versions.filter(received_at__lte=submitted_at).order_by("-sequence").first()
                  or case.versions.order_by("sequence").first())  # fmt: skip
        submission = Submission.objects.create(
            case=case, case_version=latest, clock=open_clocks[0] if open_clocks else None,
            submitted_by=_actor(user), signature=sig, late=late_by is not None,
            delay_days=_days(late_by) if late_by is not None else 0, kind=kind, **values,
        )  # fmt: skip
        for clock in open_clocks:
            clock.met_at, clock.next_check_at = submitted_at, None
            clock.save(update_fields=["met_at", "next_check_at"])
        # "submitted" once no report is owed to any regulator: not when the FDA has it and the NMPA's is still due
        # (nor when a follow-up received after it was sent is still owed)
        if case.status != CaseStatus.NULLIFIED and kind == ClockKind.REPORT and not case.clocks.filter(
            kind=ClockKind.REPORT, met_at__isnull=True, stopped_at__isnull=True
        ).exists():  # (a nullified case's nullification report leaves it nullified)
            case.status = CaseStatus.SUBMITTED
        case.version += 1
        case.updated_at = timezone.now()
        case.save(update_fields=["status", "version", "updated_at"])
        _record(A.UPDATE, case, user, submission=submission.pk, channel=submission.channel,
                jurisdiction=submission.jurisdiction, late=submission.late, delay_days=submission.delay_days,
                signature_id=sig.pk)  # fmt: skip
        if once is not None:
            once(submission)
    return submission


def record_ack(user, submission: Submission, *, accepted: bool, errors: list[str], ack_message_id: str = "",
               at: dt.datetime | None = None) -> Submission:  # fmt: skip
    """The regulator's acknowledgement. A rejection reopens the case, with the errors on its page, and
    reopens the clocks the submission had met: the report is still owed — unless the case was nullified
    meanwhile, which stays nullified (PV is told of the rejection all the same)."""
    require(user)
    at = at or timezone.now()
    with transaction.atomic():
        # the case first (as every change of a case, and as record_submission does): an officer's edit at the same
        # moment finishes before the status and version are read here, or waits for them and meets a conflict
        case = _lock(submission.case, None)
        old_status = case.status
        replanned: dict = {}
        submission = Submission.objects.select_for_update().get(pk=submission.pk)
        if submission.ack_message_id and submission.ack_message_id == ack_message_id:
            return submission  # the same acknowledgement imported twice
        submission.ack_status = AckStatus.ACCEPTED if accepted else AckStatus.REJECTED
        submission.ack_at, submission.ack_message_id = at, (ack_message_id or "")[:100]
        submission.ack_errors = [audit.cut(str(e), 1000) for e in errors][:100]
        submission.save(update_fields=["ack_status", "ack_at", "ack_message_id", "ack_errors"])
        if not accepted and case.status == CaseStatus.NULLIFIED:
            # the case was withdrawn as invalid meanwhile: no report is owed any more, so it is not reopened; PV
            # still hears of the rejection (a rejected nullification report must be sent again)
            _notify_case(case, "safety.ack-rejected",
                         Message(gettext_lazy("%(number)s: the regulator rejected the report"), number=case.number),
                         "\n".join(submission.ack_errors[:10]))  # fmt: skip
        elif not accepted:
            case.status = CaseStatus.ASSESSING
            case.version += 1
            case.updated_at = timezone.now()
            case.save(update_fields=["status", "version", "updated_at"])
            if old_status == CaseStatus.CLOSED:
                # reopened as by hand: the clocks closing stopped (a death's investigation report) run again — left
                # stopped, they read "case closed without a report" on an open case and were never warned of
                replanned = _reopen_clocks(case, timezone.now())
            reopened = SafetyClock.objects.filter(
                case=case, kind=submission.kind, jurisdiction=submission.jurisdiction, met_at=submission.submitted_at
            )  # fmt: skip
            for clock in reopened:
                clock.met_at = None
                clock.next_check_at = _next_check(clock) or (timezone.now() if clock.due_at <= at else clock.due_at)
                clock.save(update_fields=["met_at", "next_check_at"])
            _notify_case(case, "safety.ack-rejected",
                         Message(gettext_lazy("%(number)s: the regulator rejected the report"), number=case.number),
                         "\n".join(submission.ack_errors[:10]))  # fmt: skip
        status = {"changes": {"status": [old_status, case.status], **replanned}} if case.status != old_status else {}
        _record(A.UPDATE, case, user, acknowledgement=submission.ack_status, submission=submission.pk,
                ack_message_id=ack_message_id, errors=submission.ack_errors[:20], **status)  # fmt: skip
    return submission


# --- the net: flags on tickets and interactions -----------------------------------------------------------


def _handoff_calendar():
    """The calendar a hand-off in working days counts on: the service desk's business calendar."""
    from pharmacrm.servicedesk.models import BusinessCalendar

    return BusinessCalendar.objects.get(code="business")


def _handoff_due(received_at: dt.datetime, serious: bool = False, calendar=None) -> dt.datetime:
    from pharmacrm.servicedesk import calendars

    if serious:
        return received_at + SERIOUS_HANDOFF
    return calendars.engine(calendar or "business").add_days(received_at, HANDOFF_WORKING_DAYS)


def replan_handoffs(calendar, *, now: dt.datetime | None = None, **who) -> int:
    """After `calendar` changed (an override, its windows or weekdays), in the same transaction: the pending
    hand-offs counted in working days on it are due one working day from their start on the calendar as it is now
    (the four-hour ones count calendar time and stay). As the tickets' clocks: a deadline moved later is no longer
    overdue, and warned of again, while that moment is still ahead; one moved earlier and passed is the worker's
    to mark overdue. Each moved deadline is audited on its flag, by whoever changed the calendar (`who`). Returns
    how many moved."""
    from pharmacrm.servicedesk import calendars

    now = now or timezone.now()
    engine = calendars.engine(calendar)
    clocks = list(SafetyClock.objects.select_for_update(of=("self",)).filter(
        kind=ClockKind.HANDOFF, calendar=calendar, met_at__isnull=True, stopped_at__isnull=True,
    ).select_related("flag").order_by("pk"))  # fmt: skip
    moved = []
    for clock in clocks:
        due = engine.add_days(clock.started_at, HANDOFF_WORKING_DAYS)
        if due == clock.due_at:
            continue
        before, warn = clock.due_at, _warn_at(clock.started_at, due)
        if clock.breached_at is not None and clock.breached_at != due and now < due:
            clock.breached_at = None  # the deadline moved later: no longer overdue (told again if it passes)
        if clock.warned_at is not None and clock.warned_at < warn and now < warn:
            clock.warned_at = None  # warned of a deadline that moved later since: warn again before the new one
        clock.due_at, clock.warn_at = due, warn
        clock.next_check_at = _next_check(clock)
        moved.append(clock)
        audit.record(A.UPDATE, clock.flag, calendar=calendar.code,
                     changes={"handoff_due_at": [audit._jsonable(before), audit._jsonable(due)]}, **who)  # fmt: skip
    SafetyClock.objects.bulk_update(moved, ["due_at", "warn_at", "warned_at", "breached_at", "next_check_at"])
    return len(moved)


def raise_flag(source, *, kind: str, terms: list[str], excerpt: str, by_agent: bool,
               heard_at: dt.datetime | None = None, serious: bool = False) -> Flag | None:  # fmt: skip
    """Put a ticket or interaction in PV's triage queue (idempotent: one pending flag per record, whose terms
    grow with each new text), with the one-working-day hand-off clock from the source's receipt — four hours,
    and the PV officers and their managers told at once, when the text speaks of a death, a life-threatening
    state or a hospital stay (`serious`). A record
    PV already triaged is flagged again only for terms it did not have. `heard_at`: when the text that
    raised it reached the company (a later note or e-mail on an old ticket), else the source's receipt."""
    field = "ticket" if isinstance(source, _ticket_model()) else "interaction"
    now = timezone.now()
    heard_at = min(heard_at or source.received_at, now)
    with transaction.atomic():
        flags = list(Flag.objects.select_for_update().filter(**{field: source}).order_by("-id"))
        pending = next((f for f in flags if f.status == SignalStatus.PENDING), None)
        if pending is not None:
            new_terms = [t for t in terms if t not in pending.terms]
            # the words of a later message join the excerpt: PV triages them, and a case confirmed from the flag
            # keeps them in its narrative
            new_words = [line for line in excerpt.splitlines() if terms and line.strip() and line not in pending.excerpt]
            words = "\n".join([pending.excerpt, *new_words]).strip()[:1000]
            if field == "interaction" and terms:
                words = _edited_words(pending, excerpt)
                new_words = [words] if words != pending.excerpt else []
            if new_terms or new_words or (by_agent and not pending.by_agent):
                pending.terms = pending.terms + new_terms
                pending.by_agent = pending.by_agent or by_agent
                pending.excerpt = words
                pending.save(update_fields=["terms", "by_agent", "excerpt"])
            if serious:
                _escalate(pending, source, heard_at, excerpt)
            return pending
        known = {t for f in flags for t in f.terms}
        if flags and (not terms or set(terms) <= known) and not (by_agent and not any(f.by_agent for f in flags)):
            return None  # nothing new since PV looked at it
        try:
            with transaction.atomic():
                flag = Flag.objects.create(
                    kind=kind, terms=terms, excerpt=excerpt[:1000], by_agent=by_agent, received_at=heard_at,
                    created_at=now, **{field: source},
                )  # fmt: skip
        except IntegrityError:  # another save of the same record raised it a moment ago
            return Flag.objects.filter(**{field: source}, status=SignalStatus.PENDING).first()
        calendar = None if serious else _handoff_calendar()
        due = _handoff_due(heard_at, serious, calendar)
        clock = SafetyClock(kind=ClockKind.HANDOFF, flag=flag, calendar=calendar, started_at=heard_at, due_at=due,
                            warn_at=_warn_at(heard_at, due))  # fmt: skip
        clock.next_check_at = _next_check(clock)
        clock.save()
        audit.record(A.CREATE, flag, actor_name="net", source=_source_code(source), kind=kind, terms=terms,
                     by_agent=by_agent, serious=serious)  # fmt: skip
        if serious:
            _tell_serious(flag, source, excerpt)
    return flag


def _edited_words(pending: Flag, excerpt: str) -> str:
    """The excerpt of a pending flag on an interaction its author edited: an interaction's notes are corrected,
    not added to, so the text as it reads now stands in for the version flagged before (both, one under the
    other, read to PV as two mentions and went into the case's narrative twice). A line of the earlier
    version stays only when it held a term the text no longer has, so what was said is never lost."""
    lines = [line for line in excerpt.splitlines() if line.strip()]
    gone = [t for t in pending.terms if t not in excerpt]
    kept = [line for line in pending.excerpt.splitlines() if line.strip() and line not in lines
            and any(t in line for t in gone)]  # fmt: skip
    return "\n".join([*kept, *lines]).strip()[:1000]


def _tell_serious(flag: Flag, source, excerpt: str) -> None:
    """PV and their managers hear at once that a death or serious outcome may have been reported."""
    officers = pv_officers()
    title = Message(gettext_lazy("%(source)s: a death or serious outcome may have been reported"),
                    source=_source_code(source))  # fmt: skip
    # the customer's words (they may name the patient) go to PV only, not to their managers' bell and mail
    readers = [u for u in officers + managers_of(officers) if access.can_see_case_identity(u)]
    others = [u for u in managers_of(officers) if not access.can_see_case_identity(u)]
    _notify(readers, "safety.serious", title, excerpt, flag)
    _notify(others, "safety.serious", title, "", flag)


def _escalate(flag: Flag, source, heard_at: dt.datetime, excerpt: str) -> None:
    """A death or serious outcome told in a later message on a record already waiting for triage: its hand-off
    becomes the four-hour one from that message (unless it is due sooner already), and PV is told at once."""
    due = _handoff_due(heard_at, serious=True)
    clock = SafetyClock.objects.filter(flag=flag, kind=ClockKind.HANDOFF, met_at__isnull=True).first()
    if clock is None:
        return
    if clock.due_at <= due:  # already a four-hour hand-off (PV was told then), or due sooner still
        if clock.calendar_id is not None:  # … which a later calendar change must not put off beyond four hours
            SafetyClock.objects.filter(pk=clock.pk).update(calendar=None)
        return
    before = clock.due_at
    # calendar time from now on: a later change of the working calendar leaves it alone
    clock.due_at, clock.warn_at, clock.warned_at, clock.calendar = due, _warn_at(heard_at, due), None, None
    clock.next_check_at = _next_check(clock)
    clock.save(update_fields=["due_at", "warn_at", "warned_at", "calendar", "next_check_at"])
    audit.record(A.UPDATE, flag, actor_name="net", source=_source_code(source), serious=True,
                 changes={"handoff_due_at": [audit._jsonable(before), audit._jsonable(due)]})  # fmt: skip
    _tell_serious(flag, source, excerpt)


def screen_source(source, texts: Iterable[str], *, safety_relevant: bool = False,
                  heard_at: dt.datetime | None = None) -> Flag | None:  # fmt: skip
    """Run the net over a ticket's or interaction's texts (on every save): a signal, or the staff's
    safety-relevant flag, raises a flag for PV triage."""
    from . import screen

    kinds, terms, hits = [], [], []
    for text in texts:
        if not text:
            continue
        result = screen.screen(text)
        if result.signal:
            kinds.append(result.kind)
            terms += [t for t in result.terms if t not in terms]
            hits.append(text)
    excerpt = "\n".join(hits)[:1000]
    if not kinds and not safety_relevant:
        return None
    kind = next((k for k in (SignalKind.ADVERSE_REACTION, SignalKind.QUALITY, SignalKind.LACK_OF_EFFICACY)
                 if k in kinds), SignalKind.ADVERSE_REACTION)  # fmt: skip
    if not excerpt:
        excerpt = next((t for t in texts if t), "")[:1000]
    return raise_flag(source, kind=kind, terms=terms, excerpt=excerpt, by_agent=safety_relevant and not kinds,
                      heard_at=heard_at, serious=bool(kinds) and sounds_serious(hits))  # fmt: skip


def _meet_handoff(flag: Flag, now: dt.datetime) -> None:
    SafetyClock.objects.filter(flag=flag, met_at__isnull=True).update(met_at=now, next_check_at=None)


SIGNAL_TO_CASE = {
    SignalKind.ADVERSE_REACTION: CaseKind.ADVERSE_REACTION,
    SignalKind.QUALITY: CaseKind.QUALITY,
    SignalKind.LACK_OF_EFFICACY: CaseKind.LACK_OF_EFFICACY,
}
# the ticket categories that say which kind of case a reaction signal is: the net knows no medication error (误服,
# 吃错了药 are reaction signals to it), the agent who filed the ticket under 用药错误 did
CATEGORY_TO_CASE = {"medication_error": CaseKind.MEDICATION_ERROR}


def ticket_case_kind(ticket) -> str | None:
    """The kind of case the ticket's category says (its own or its parent's): a medication error; else None."""
    category = ticket.category
    for code in (category.code, category.parent.code if category.parent_id else None):
        if code in CATEGORY_TO_CASE:
            return CATEGORY_TO_CASE[code]
    return None


def default_case_kind(flag: Flag) -> str:
    """The kind of case a flag opens unless PV chooses another: the signal's, except that a reaction signal on a
    ticket the agent filed as a medication error (the category or its parent) is a medication error."""
    kind = SIGNAL_TO_CASE[flag.kind]
    if kind == CaseKind.ADVERSE_REACTION and flag.ticket_id:
        return ticket_case_kind(flag.ticket) or kind
    return kind


def confirm_flag(user, flag: Flag, *, kind: str | None = None, data: dict | None = None) -> SafetyCase:
    """PV confirms a flag: a case opens from its ticket or interaction, day 0 = the source's receipt."""
    require(user)
    with transaction.atomic():
        flag = Flag.objects.select_for_update().get(pk=flag.pk)
        if flag.status != SignalStatus.PENDING:
            raise ValidationError({"flag": [_("This flag was already triaged.")]})
        source = flag.ticket or flag.interaction
        now = timezone.now()
        heard_at = flag.received_at
        if flag.interaction_id:  # an interaction's text is all from one moment: the earlier of the two
            heard_at = min(heard_at, source.received_at)
        case = create_case(user, {"kind": kind or default_case_kind(flag), **(data or {})}, source=source, flag=flag,
                           heard_at=heard_at)  # fmt: skip
        flag.status, flag.decided_by, flag.decided_at, flag.case = SignalStatus.CONFIRMED, _actor(user), now, case
        flag.save(update_fields=["status", "decided_by", "decided_at", "case"])
        _meet_handoff(flag, now)
        _record(A.UPDATE, flag, user, changes={"status": ["pending", "confirmed"]}, case=case.number)
    return case


def dismiss_flag(user, flag: Flag, *, reason: str) -> Flag:
    """PV dismisses a flag (not a reaction, already reported …): the reason is required and audited."""
    require(user)
    if not (reason or "").strip():
        raise ValidationError({"reason": [_("Say why this is not a safety case.")]})
    with transaction.atomic():
        flag = Flag.objects.select_for_update().get(pk=flag.pk)
        if flag.status != SignalStatus.PENDING:
            raise ValidationError({"flag": [_("This flag was already triaged.")]})
        now = timezone.now()
        flag.status, flag.decided_by, flag.decided_at, flag.reason = (
            SignalStatus.DISMISSED, _actor(user), now, reason.strip()
        )
        flag.save(update_fields=["status", "decided_by", "decided_at", "reason"])
        _meet_handoff(flag, now)
        _record(A.UPDATE, flag, user, changes={"status": ["pending", "dismissed"]}, reason=flag.reason)
    return flag


def open_case_from(user, source, *, kind: str, data: dict | None = None) -> SafetyCase:
    """A PV officer opens a case straight from a ticket or an interaction (confirming its flag if any)."""
    require(user)
    field = "ticket" if isinstance(source, _ticket_model()) else "interaction"
    pending = Flag.objects.filter(**{field: source}, status=SignalStatus.PENDING).first()
    if pending is not None:
        return confirm_flag(user, pending, kind=kind, data=data)
    return create_case(user, {"kind": kind, **(data or {})}, source=source)


# --- quality complaints and CAPA -------------------------------------------------------------------------

QUALITY_FIELDS = ("product", "batch", "expiry_date", "defect", "qa_owner", "investigation_outcome", "root_cause",
                  "recall_decision", "recall_reason")  # fmt: skip


def _clean_quality(data: dict, errors: dict) -> dict:
    out: dict = {}
    for field in QUALITY_FIELDS:
        if field not in data:
            continue
        value = data[field]
        if field == "expiry_date":
            value = _clean_date(value, field, errors)
        elif field == "recall_decision":
            value = _clean_choice(value, RecallDecision, field, errors)
        elif field in ("product", "qa_owner"):
            if field == "qa_owner" and value is not None and not access.can(value, Cap.HANDLE_SAFETY):
                errors.setdefault(field, []).append(_("Choose a user of the pharmacovigilance / QA role."))
        else:
            value = "" if value is None else str(value).strip()
            limit = QualityComplaint._meta.get_field(field).max_length
            if limit and len(value) > limit:
                errors.setdefault(field, []).append(_("At most %(limit)d characters.") % {"limit": limit})
        out[field] = value
    if out.get("recall_decision") and out["recall_decision"] != RecallDecision.NO_RECALL and not out.get(
        "recall_reason", data.get("recall_reason")
    ):
        errors.setdefault("recall_reason", []).append(_("Give the reason for the recall and its class."))
    return out


def update_quality(user, case: SafetyCase, data: dict, *, version: int | None = None) -> QualityComplaint:
    """The defect, QA's investigation and the recall decision of a quality complaint."""
    require(user)
    errors: dict[str, list[str]] = {}
    values = _clean_quality(data, errors)
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        case = _lock(case, version)
        if case.status in (CaseStatus.CLOSED, CaseStatus.NULLIFIED):
            # it was closed with its batch, outcome and recall decision: changing them means reopening it (a reason)
            raise ValidationError({"status": [_("A closed case cannot be changed; reopen it first.")]})
        complaint, _created = QualityComplaint.objects.get_or_create(case=case)
        before = {f: getattr(complaint, f) for f in values}
        for field, value in values.items():
            setattr(complaint, field, value)
        if "recall_decision" in values and values["recall_decision"] != before.get("recall_decision"):
            complaint.decided_at = now if values["recall_decision"] else None
        first = bool(complaint.qa_owner_id and complaint.handed_to_qa_at is None)
        # handed to another QA owner: the investigation's task (and its due date) goes with it, and they are told
        moved = bool(complaint.qa_owner_id and not first and "qa_owner" in values
                     and getattr(before["qa_owner"], "pk", None) != complaint.qa_owner_id)  # fmt: skip
        if first:
            complaint.handed_to_qa_at = now
            CaseTask.objects.create(case=case, kind=TaskKind.QA_HANDOFF, assignee=complaint.qa_owner, created_at=now,
                                    title=_("Investigate the quality complaint %(number)s") % {"number": case.number},
                                    due_date=timezone.localdate(now) + dt.timedelta(days=30))  # fmt: skip
        elif moved:
            case.tasks.filter(kind=TaskKind.QA_HANDOFF, done_at__isnull=True).update(assignee=complaint.qa_owner)
        if first or moved:
            _notify([complaint.qa_owner], "safety.qa-handoff",
                    Message(gettext_lazy("%(number)s: quality complaint handed to you"), number=case.number),
                    complaint.defect,
                    case)  # fmt: skip
        complaint.save()
        if complaint.investigation_outcome and complaint.recall_decision:
            case.tasks.filter(kind=TaskKind.QA_HANDOFF, done_at__isnull=True).update(done_at=now)
        case.version += 1
        case.updated_at = now
        if case.status == CaseStatus.NEW:
            case.status = CaseStatus.ASSESSING
        refresh_derived(case)
        case.save(update_fields=["version", "updated_at", "status", "serious", "fatal", "valid", "missing"])
        _sync_follow_up_task(case, now)
        _record(A.UPDATE, case, user, quality=_audit_changes(before, values))
    return complaint


def quality_is(case: SafetyCase, data: dict) -> bool:
    """Whether the case's quality complaint holds what `data` gives, read as update_quality reads it: the
    investigation form sent again (a double click) finds what its first sending saved."""
    errors: dict[str, list[str]] = {}
    values = _clean_quality(data, errors)
    complaint = QualityComplaint.objects.filter(case=case).first()
    return not errors and complaint is not None and all(getattr(complaint, f) == v for f, v in values.items())


def add_capa(user, case: SafetyCase, data: dict) -> Capa:
    require(user)
    errors: dict[str, list[str]] = {}
    action = str(data.get("action") or "").strip()
    if not action:
        errors["action"] = [_("Describe the corrective or preventive action.")]
    owner = data.get("owner")
    if owner is None:
        errors["owner"] = [_("Name who carries out the action.")]
    elif not (owner.is_active and access.can(owner, Cap.HANDLE_SAFETY)):
        # the owner is told and must open the case to record the action done: another role could not
        errors["owner"] = [_("Choose a user of the pharmacovigilance / QA role.")]
    due = _clean_date(data.get("due_date"), "due_date", errors)
    if due is None and "due_date" not in errors:
        errors["due_date"] = [_("Set a due date.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        complaint, _created = QualityComplaint.objects.get_or_create(case=case)
        capa = Capa.objects.create(complaint=complaint, action=action, owner=owner, due_date=due,
                                   preventive=bool(data.get("preventive")))  # fmt: skip
        _notify([owner], "safety.capa", Message(gettext_lazy("%(number)s: a CAPA action for you"), number=case.number),
                action, case)  # fmt: skip
        _record(A.CREATE, capa, user, case=case.number, due_date=due, owner=owner.pk)
    return capa


def update_capa(user, capa: Capa, data: dict, *, version: int | None = None) -> Capa:
    """Mark a CAPA done, then record its effectiveness check (effective or not). `version` is the one the user
    loaded: an action another officer updated since then raises ConflictError (their record is not overwritten)."""
    require(user)
    now = timezone.now()
    with transaction.atomic():
        capa = Capa.objects.select_for_update().get(pk=capa.pk)
        status = _clean_choice(data.get("status") or capa.status, CapaStatus, "status", errors := {})
        check = str(data.get("effectiveness_check") or capa.effectiveness_check).strip()
        if version is not None and (not is_id(version) or int(version) != capa.version):
            if (status, check) == (capa.status, capa.effectiveness_check) and sent_again_after(user, capa, version):
                return capa  # the same update sent twice (a double click): saved the first time, no conflict
            raise ConflictError(capa.version)  # (a colleague's change in between, even to these values, is one)
        if status in (CapaStatus.EFFECTIVE, CapaStatus.NOT_EFFECTIVE) and not check:
            errors.setdefault("effectiveness_check", []).append(_("Describe how the effectiveness was checked."))
        if errors:
            raise ValidationError(errors)
        before = {"status": capa.status, "effectiveness_check": capa.effectiveness_check}
        capa.status, capa.effectiveness_check = status, check
        after = {"status": status, "effectiveness_check": check}
        if status != CapaStatus.OPEN and capa.done_at is None:
            capa.done_at = now
        if status in (CapaStatus.EFFECTIVE, CapaStatus.NOT_EFFECTIVE) and after != before:
            capa.checked_at = now  # (saved again unchanged, the check keeps the day it was made)
        capa.version += 1
        capa.save()
        # a GMP record: the check's text rewritten ("not effective: it recurred" → "effective") is in the trail too
        _record(A.UPDATE, capa, user, changes=_audit_changes(before, after))
    return capa


def batch_trace(batch: str, product=None) -> list[dict]:
    """Every customer known to have received `batch`: from tickets and cases that name it (orders join in
    when sales data exists — register_batch_source)."""
    from pharmacrm.servicedesk.models import Ticket

    batch = unicodedata.normalize("NFKC", (batch or "").strip())  # full-width, as a Chinese input method types it
    if not batch:
        return []
    rows: dict[tuple, dict] = {}

    def add(institution, person, source: str, at) -> None:
        key = (institution.pk if institution else None, person.pk if person else None)
        if key == (None, None):
            return
        row = rows.setdefault(key, {"institution": institution, "person": person, "sources": [], "first": at})
        row["sources"].append(source)
        row["first"] = min(row["first"], at)

    tickets = Ticket.objects.filter(_batch_is("batch_number", batch)).select_related("institution", "person")
    if product is not None:
        tickets = tickets.filter(Q(product=product) | Q(product__isnull=True))
    for t in tickets[:2000]:
        add(t.institution, t.person, t.number, t.received_at)
    cases = SafetyCase.objects.filter(_batch_is("drugs__batch", batch) | _batch_is("quality__batch", batch)).distinct()
    for case in cases.select_related("source_ticket__institution", "source_ticket__person",
                                     "source_interaction__institution", "source_interaction__person")[:2000]:  # fmt: skip
        source = case.source_ticket or case.source_interaction
        if source is not None:
            add(source.institution, source.person, case.number, case.received_at)
    for source_fn in BATCH_SOURCES:
        for institution, person, label, at in source_fn(batch, product):
            add(institution, person, label, at)
    return sorted(rows.values(), key=lambda r: r["first"])


BATCH_SOURCES: list = []


def _batch_is(field: str, batch: str) -> Q:
    """`field` holds `batch` in either width: an agent's input method in full-width mode stores ２１Ｅ００５ on the
    ticket (and the case it opens), which the half-width 21E005 of the trace did not find."""

    def wide(text: str) -> str:
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)

    # (a database folds the case of ASCII letters only: the full-width ones are looked for in both cases)
    match = Q(**{f"{field}__iexact": batch})
    for text in {wide(batch.upper()), wide(batch.lower())}:
        match |= Q(**{field: text})
    return match


def register_batch_source(fn) -> None:
    """Issue 5 (orders) registers fn(batch, product) → [(institution, person, label, at)]."""
    if fn not in BATCH_SOURCES:
        BATCH_SOURCES.append(fn)


# --- notifications and the worker ------------------------------------------------------------------------


def pv_officers() -> list[User]:
    return list(User.objects.filter(is_active=True, groups__name=Role.PV).distinct())


def managers_of(users: Iterable[User]) -> list[User]:
    """Their managers: the leads of their teams, or the managers when no team has a lead."""
    ids = [u.pk for u in users]
    leads = [u for u in User.objects.filter(is_active=True, led_teams__members__in=ids).distinct() if u.pk not in ids]
    if leads:
        return leads
    return list(User.objects.filter(is_active=True, groups__name=Role.MANAGER).distinct())


def _notify(recipients, kind: str, title, body, obj) -> None:
    from pharmacrm.notify import services as notify

    url = reverse("safety:case", args=[obj.pk]) if isinstance(obj, SafetyCase) else reverse("safety:triage")
    notify.send([r for r in recipients if r is not None], kind=kind, title=title, body=body or "", url=url,
                obj=obj)  # fmt: skip


def _notify_case(case: SafetyCase, kind: str, title, body="") -> None:
    officers = [case.owner] if case.owner_id and case.owner.is_active else pv_officers()
    _notify(officers + managers_of(officers), kind, title, body, case)


def sweep(now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """One pass of the worker over the regulatory and hand-off clocks: due soon → the PV officers (the
    case's owner, or all of them) and their manager are told; overdue → told again, marked breached. Each
    clock is handled once whatever the number of workers (leased with a conditional update)."""
    now = now or timezone.now()
    counts = {"clocks": 0, "warned": 0, "breached": 0}
    from pharmacrm.notify import services as notify

    with transaction.atomic():
        won = dueclock.claim_batch(SafetyClock, dueclock.due_ids(SafetyClock, now, limit=limit), now)
        counts["clocks"] = len(won)
        if not won:
            return counts
        clocks = list(SafetyClock.objects.filter(pk__in=won).select_related("case__owner", "flag", "rule")
                      .order_by("next_check_at", "id"))  # fmt: skip
        officers = pv_officers()
        bosses = managers_of(officers)
        uncovered = provisional_years(((c.pk, c.calendar_id, c.due_at, c.met_at) for c in clocks), now)
        items, lines, warned = [], [], []
        for clock in clocks:
            if clock.met_at is not None:
                pass
            elif clock.due_at <= now and clock.breached_at is None:
                clock.breached_at = clock.due_at
                counts["breached"] += 1
                items.append(_clock_note(clock, officers, bosses, overdue=True, uncovered=uncovered.get(clock.pk)))
                lines.append({"clock": clock.pk, "due_at": clock.due_at.isoformat(), "kind": clock.kind})
            elif clock.warned_at is None and clock.warn_at and clock.warn_at <= now:
                clock.warned_at = now
                counts["warned"] += 1
                items.append(_clock_note(clock, officers, bosses, overdue=False, uncovered=uncovered.get(clock.pk)))
                warned.append({"clock": clock.pk, "due_at": clock.due_at.isoformat(), "kind": clock.kind})
            clock.next_check_at = _next_check(clock)
            clock.claimed_until = None
        SafetyClock.objects.bulk_update(clocks, ["breached_at", "warned_at", "next_check_at", "claimed_until"])
        notify.send_many([i for i in items if i])
        if lines:
            audit.record(A.UPDATE, ("safety.safetyclock", "", str(len(lines))), actor_name="worker", overdue=lines)
        if warned:  # the warnings stamped, likewise: one entry per batch
            audit.record(A.UPDATE, ("safety.safetyclock", "", str(len(warned))), actor_name="worker", warned=warned)
    return counts


def sweep_capas(now: dt.datetime | None = None, limit: int = 500) -> int:
    """CAPA actions still open after their due date: the owner and their manager are told once (each action
    claimed with a conditional update, so several workers tell nobody twice). Returns how many were told."""
    from pharmacrm.notify import services as notify

    now = now or timezone.now()
    today = timezone.localdate(now)
    due = list(Capa.objects.filter(status=CapaStatus.OPEN, overdue_notified_at__isnull=True, due_date__lt=today)
               .order_by("due_date", "id").values_list("pk", flat=True)[:limit])  # fmt: skip
    items, lines = [], []
    with transaction.atomic():
        for pk in due:
            if not Capa.objects.filter(pk=pk, overdue_notified_at__isnull=True).update(overdue_notified_at=now):
                continue  # another worker took it
            capa = Capa.objects.select_related("complaint__case", "owner").get(pk=pk)
            case = capa.complaint.case
            owners = [capa.owner] if capa.owner_id and capa.owner.is_active else pv_officers()
            items.append({
                "recipients": owners + managers_of(owners), "kind": "safety.capa-overdue",
                "title": Message(gettext_lazy("%(number)s: a CAPA action is overdue (due %(due)s)"),
                                 number=case.number, due=capa.due_date.isoformat()),
                "body": capa.action[:500], "url": reverse("safety:case", args=[case.pk]) + "#capa", "obj": case,
            })  # fmt: skip
            lines.append({"capa": capa.pk, "case": case.number, "due_date": capa.due_date.isoformat()})
        notify.send_many(items)
        if lines:
            audit.record(A.UPDATE, ("safety.capa", "", str(len(lines))), actor_name="worker", overdue=lines)
    return len(lines)


def _clock_note(clock: SafetyClock, officers: list[User], bosses: list[User], *, overdue: bool,
                uncovered: tuple[int, ...] | None = None) -> dict | None:  # fmt: skip
    due = timezone.localtime(clock.due_at).strftime("%Y-%m-%d %H:%M")
    if clock.case_id:
        case = clock.case
        owners = [case.owner] if case.owner_id and case.owner.is_active else officers
        recipients = owners + (managers_of(owners) if case.owner_id else bosses)
        rule = builtin.text(clock.rule.name) if clock.rule else choice_label(clock, "kind")
        title = Message(gettext_lazy("%(number)s is overdue: %(rule)s (due %(due)s)") if overdue
                        else gettext_lazy("%(number)s is due soon: %(rule)s (due %(due)s)"),
                        number=case.number, rule=rule, due=due)  # fmt: skip
        return {"recipients": recipients, "kind": "safety.overdue" if overdue else "safety.due-soon",
                "title": title, "body": "", "url": reverse("safety:case", args=[case.pk]), "obj": case}  # fmt: skip
    flag = clock.flag
    source = flag.ticket or flag.interaction if flag else None
    if source is None:
        return None
    title = Message(gettext_lazy("%(source)s has not reached pharmacovigilance in time (due %(due)s)") if overdue
                    else gettext_lazy("%(source)s waits for safety triage (due %(due)s)"),
                    source=_source_text(source), due=due)  # fmt: skip
    # a deadline counted into a year whose holidays are not entered yet may move: the notice says so, as the pages do
    body = Message(gettext_lazy("Provisional: the official holidays of %(years)s are not entered yet, so this deadline "
                                "counts their weekdays as working days and may move once they are."),
                   years=list(uncovered)) if uncovered else ""  # fmt: skip
    # no excerpt: the customer's words may name the patient, and managers receive this too
    return {"recipients": officers + bosses, "kind": "safety.handoff", "title": title, "body": body,
            "url": reverse("safety:triage"), "obj": flag}  # fmt: skip


# --- queries ---------------------------------------------------------------------------------------------


def provisional_years(clocks, now: dt.datetime | None = None) -> dict:
    """{key: (year, …)} for the open working-day deadlines among `clocks` — (key, calendar id, due_at, met_at)
    tuples — counted into a year whose official holidays nobody entered yet (next year's schedule before an
    administrator enters it): the deadline counted that year's holidays as working days and may move, which every
    place showing it says (pages, exports, the API, the notices). One query for the calendars involved."""
    from pharmacrm.servicedesk import calendars
    from pharmacrm.servicedesk.models import BusinessCalendar

    now = now or timezone.now()
    open_ = [(key, calendar_id, due) for key, calendar_id, due, met in clocks if calendar_id and met is None and due]
    wanted = {calendar_id for _key, calendar_id, _due in open_}
    engines = {c.pk: calendars.engine(c) for c in BusinessCalendar.objects.filter(pk__in=wanted)} if wanted else {}
    found = {}
    for key, calendar_id, due in open_:
        engine = engines.get(calendar_id)
        years = calendars.provisional_years(engine, now, due) if engine else ()
        if years:
            found[key] = years
    return found


def due_clocks(now: dt.datetime | None = None, *, owner: User | None = None, limit: int = 50):
    """The PV officer's list: open clocks, earliest deadline first (the partial index on due_at over
    open clocks)."""
    qs = SafetyClock.objects.filter(met_at__isnull=True, stopped_at__isnull=True).order_by("due_at", "id")
    if owner is not None:
        qs = qs.filter(case__owner=owner)
    # no encrypted column is read: a due list decrypts nothing
    return qs.select_related("case", "rule", "flag__ticket", "flag__interaction").only(
        "kind", "jurisdiction", "started_at", "warn_at", "due_at", "warned_at", "breached_at", "met_at", "stopped_at",
        "case_version_id", "calendar_id",
        "rule__name", "rule__code", "rule__clock_kind", "case__number", "case__kind", "case__status", "case__valid",
        "case__serious", "case__fatal", "case__received_at", "case__owner_id", "flag__kind", "flag__status",
        "flag__received_at", "flag__ticket__number", "flag__ticket__subject", "flag__interaction__subject",
        "flag__interaction__received_at",
    )[:limit]  # fmt: skip
