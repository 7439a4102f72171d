"""The business-rule check an ICSR must pass before it leaves the company, built from FDA's E2B(R3) data-element
table (`data/e2b-r3/fda-icsr-data-elements.csv`: conformance, maximum length, data type, allowed values per
element), plus the rules the table states in prose: MedDRA codes for a regulatory submission, the pairs that
belong together, the four minimum criteria of a valid case.

The same module says which case field fills which E2B element (`values`), so the check looks at exactly the
values the export writes."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from .. import conf, partial_dates
from ..choices import Causality, Challenge, Criterion, DrugRole

TABLE = Path(__file__).resolve().parent.parent / "data" / "e2b-r3" / "fda-icsr-data-elements.csv"
REGULATORY = "regulatory"
PARTNER = "partner"
PURPOSES = (REGULATORY, PARTNER)
NULL_FLAVORS = ("NI", "MSK", "UNK", "NA", "ASKU", "NASK", "NINF", "PINF", "OTH")
MEDDRA_ELEMENTS = frozenset({"E.i.2.1a", "E.i.2.1b"})  # required by ICH; we ask for them for regulators only

# China's six-level causality scale as G.k.9.i.2.r.3 text (关联性评价): the regulator reads the Chinese term
CAUSALITY_TERMS = {
    Causality.CERTAIN: "肯定",
    Causality.PROBABLE: "很可能",
    Causality.POSSIBLE: "可能",
    Causality.UNLIKELY: "可能无关",
    Causality.CONDITIONAL: "待评价",
    Causality.UNASSESSABLE: "无法评价",
}
CAUSALITY_METHOD = "China NMPA 6-level"
RECHALLENGE_CODES = {Challenge.YES: "1", Challenge.NO: "2", Challenge.UNKNOWN: "3", Challenge.NOT_DONE: "4"}
SUSPECT_ROLES = frozenset({DrugRole.SUSPECT, DrugRole.INTERACTING})
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$", re.ASCII)  # (not ４５: the schema's real is ASCII)
_CODE = re.compile(r"(?:^|\s)(\d{1,2})\s*=")
# every MedDRA term code has eight digits, and a version is written as its release: 27.1 (FDA: "15.1" for 15.1)
MEDDRA_CODE = re.compile(r"\d{8}", re.ASCII)
MEDDRA_VERSION = re.compile(r"\d{1,2}\.\d", re.ASCII)
MEDDRA_CODES = frozenset({"E.i.2.1b", "G.k.7.r.2b"})


@dataclass(frozen=True)
class Element:
    """One row of the FDA table: an ICH (or FDA regional) data element."""

    number: str
    name: str
    max_length: int | None
    data_type: str
    values_allowed: str
    conformance: str  # ICH conformance: Required, Conditional-Required, Optional
    null_flavors: frozenset[str]
    xpath: str

    @property
    def required(self) -> bool:
        return self.conformance.lower() == "required"

    @property
    def codes(self) -> frozenset[str]:
        """The codes a coded numeric element allows ("1=Spontaneous report 2=…" → {"1", "2"}); empty when
        the element is not a code list."""
        if self.data_type != "N":
            return frozenset()
        return frozenset(_CODE.findall(self.values_allowed))


@dataclass(frozen=True)
class Problem:
    """Something to fill in or correct before the case can be exported."""

    case: str  # case number
    element: str  # E2B(R3) element number, e.g. "E.i.2.1b"
    field: str  # the model field to fill, e.g. "reactions[0].meddra_llt"
    message: str  # localised

    def __str__(self) -> str:
        where = f"{self.case} {self.element}" if self.case else self.element
        return f"{where} ({self.field}): {self.message}" if self.field else f"{where}: {self.message}"


@functools.cache
def elements() -> dict[str, Element]:
    """The FDA data-element table, parsed once per process: element number → row."""
    with TABLE.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[1]
    flavour_col = {name: header.index(name) for name in NULL_FLAVORS}
    xpath_col = header.index("Value")
    table: dict[str, Element] = {}
    for row in rows[2:]:
        number = row[2].strip()
        if not number or number.startswith("("):  # section headings
            continue
        length = row[4].strip()
        table[number] = Element(
            number=number,
            name=row[3].strip(),
            max_length=int(length) if length.isdecimal() else None,
            data_type=row[5].strip(),
            values_allowed=row[6],
            conformance=row[7].strip(),
            null_flavors=frozenset(f for f, col in flavour_col.items() if row[col].strip().lower() == "yes"),
            xpath=row[xpath_col].strip(),
        )
    return table


# --- which case field goes where ----------------------------------------------------------------------------


def product_name(drug) -> str:
    """G.k.2.2: the name the reporter used: brand, else generic, else the catalogue product's."""
    if drug.brand_name or drug.generic_name:
        return drug.brand_name or drug.generic_name
    product = drug.product
    return (product.brand_name or product.generic_name) if product else ""


# G.k.4.r.1b is a constrained UCUM code: the units a Chinese dose is written in, as UCUM; a count of a dosage form
# (片, 粒, 支 …) is "{DF}", as the FDA table says
UCUM_UNITS = {
    "毫克": "mg", "克": "g", "微克": "ug", "μg": "ug", "µg": "ug", "mcg": "ug", "纳克": "ng", "千克": "kg",
    "公斤": "kg", "毫升": "mL", "ml": "mL", "升": "L", "l": "L", "国际单位": "[iU]", "iu": "[iU]", "单位": "[U]",
    "u": "[U]", "毫摩尔": "mmol", "mmol": "mmol",
    **dict.fromkeys(("片", "粒", "丸", "袋", "支", "瓶", "贴", "揿", "喷", "滴", "包", "枚", "颗", "剂", "板", "管", "胶囊",
                     "tablet", "tablets", "tab", "tabs", "capsule", "capsules", "cap", "caps"), "{DF}"),
}  # fmt: skip


def ucum_unit(text: str) -> str:
    """A dose unit as written ("毫克", "片", "mg") as the UCUM code G.k.4.r.1b takes; unknown ones as written."""
    unit = (text or "").strip()
    return UCUM_UNITS.get(unit.lower(), unit)


def meddra_version(case) -> str:
    """The MedDRA version the case is coded in (the first reaction that names one): G.k.7.r.2a has no field
    of its own."""
    return next((r.meddra_version for r in case.reactions.all() if r.meddra_version), "")


def safety_report_id(case, sender_org_code: str) -> str:
    """C.1.1: the sender's id if the case came with one, else country-company-number."""
    return case.sender_case_id or f"{case.country}-{sender_org_code}-{case.number}"


def values(case) -> Iterator[tuple[str, str, object]]:
    """(element, model field, value) for every element the export fills from the case."""
    yield "C.1.3", "report_type", case.report_type
    yield "C.1.4", "received_at", case.received_at
    yield "C.1.5", "latest_received_at", case.latest_received_at
    report_id = safety_report_id(case, conf.sender_org_code())
    yield "C.1.1", "sender_case_id", report_id
    yield "C.1.8.1", "worldwide_id", case.worldwide_id or report_id
    yield "C.2.r.1.2", "reporter_name", case.reporter_name
    yield "C.2.r.2.1", "reporter_institution", case.reporter_institution
    if "@" not in case.reporter_contact:
        yield "C.2.r.2.7", "reporter_contact", case.reporter_contact.replace(" ", "")
    yield "C.2.r.3", "reporter_country", case.reporter_country
    yield "C.2.r.4", "reporter_qualification", case.reporter_qualification
    yield "D.1", "patient_name", case.patient_name
    yield "D.1.1.3", "patient_record_number", case.patient_record_number
    yield "D.2.1", "patient_birth_date", case.patient_birth_date
    yield "D.2.2a", "patient_age", case.patient_age
    yield "D.2.2b", "patient_age_unit", case.patient_age_unit
    yield "D.3", "patient_weight_kg", case.patient_weight_kg
    yield "D.4", "patient_height_cm", case.patient_height_cm
    yield "D.5", "patient_sex", case.patient_sex
    yield "D.7.2", "patient_history", case.patient_history
    for i, reaction in enumerate(case.reactions.all()):
        at = f"reactions[{i}]"
        yield "E.i.1.1a", f"{at}.verbatim", reaction.verbatim
        yield "E.i.1.1b", f"{at}.language", reaction.language
        yield "E.i.2.1a", f"{at}.meddra_version", reaction.meddra_version
        yield "E.i.2.1b", f"{at}.meddra_llt", reaction.meddra_llt
        yield "E.i.4", f"{at}.onset_date", reaction.onset_date
        yield "E.i.5", f"{at}.end_date", reaction.end_date
        yield "E.i.7", f"{at}.outcome", reaction.outcome
        yield "E.i.9", "country", case.country
    for k, drug in enumerate(case.drugs.all()):
        at = f"drugs[{k}]"
        yield "G.k.1", f"{at}.role", drug.role
        yield "G.k.2.2", f"{at}.brand_name", product_name(drug)
        yield "G.k.2.3.r.1", f"{at}.generic_name", drug.generic_name if drug.brand_name else ""
        yield "G.k.3.1", f"{at}.approval_number", drug.approval_number
        yield "G.k.3.3", f"{at}.manufacturer", drug.manufacturer
        yield "G.k.4.r.1a", f"{at}.dose", drug.dose
        yield "G.k.4.r.1b", f"{at}.dose_unit", ucum_unit(drug.dose_unit)
        yield "G.k.4.r.4", f"{at}.start_date", drug.start_date
        yield "G.k.4.r.5", f"{at}.stop_date", drug.stop_date
        yield "G.k.4.r.7", f"{at}.batch", drug.batch
        yield "G.k.4.r.8", f"{at}.frequency", drug.frequency
        yield "G.k.4.r.9.1", f"{at}.dosage_form", drug.dosage_form
        yield "G.k.4.r.10.1", f"{at}.route", drug.route
        yield "G.k.7.r.1", f"{at}.indication", drug.indication
        yield "G.k.7.r.2b", f"{at}.indication_meddra", drug.indication_meddra
        yield "G.k.8", f"{at}.action_taken", drug.action_taken
        yield "G.k.9.i.4", f"{at}.rechallenge", RECHALLENGE_CODES.get(drug.rechallenge, "")
    yield "H.1", "narrative", case.narrative
    yield "H.2", "reporter_comment", case.reporter_comment
    yield "H.4", "sender_comment", case.sender_comment
    for reference in (case.literature or "").splitlines():
        yield "C.4.r.1", "literature", reference


# --- the check ----------------------------------------------------------------------------------------------


def field_label(field: str, spec: Element) -> str:
    """What a problem calls the element: the case form's label of the field that fills it, in the user's
    language ("reactions[0].meddra_version" → "MedDRA 版本"), else the FDA table's (English) element name."""
    from ..models import Drug, Reaction, SafetyCase

    model = Reaction if field.startswith("reactions[") else Drug if field.startswith("drugs[") else SafetyCase
    try:
        return str(capfirst(model._meta.get_field(field.rsplit(".", 1)[-1]).verbose_name))
    except FieldDoesNotExist:
        return spec.name



def missing_criteria(case) -> list[Criterion]:
    """Which of the four minimum criteria of a valid case (ICH E2D) the case lacks: the services' own test,
    so that the case page and the export never disagree."""
    from ..services import missing_criteria as missing

    return [Criterion(value) for value in missing(case, case.drugs.all(), case.reactions.all())]


CRITERION_PLACE = {  # where a missing criterion is filled in
    Criterion.PATIENT: ("D.1", "patient_name"),
    Criterion.REPORTER: ("C.2.r", "reporter_name"),
    Criterion.PRODUCT: ("G.k.1", "drugs"),
    Criterion.REACTION: ("E.i.1.1a", "reactions"),
}

# (element, element it needs): a value in the first needs one in the second (the table's
# "Conditional-Required", whose conditions are prose)
PAIRS = {
    "D.2.2a": "D.2.2b",
    "G.k.4.r.1a": "G.k.4.r.1b",
    "E.i.1.1a": "E.i.1.1b",
    "E.i.2.1b": "E.i.2.1a",
    "E.i.2.1a": "E.i.2.1b",
}


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_date(value) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value if isinstance(value, dt.date) else None


def check(case, purpose: str = REGULATORY) -> list[Problem]:
    """Everything that keeps `case` from a valid ICSR for `purpose` ("regulatory" or "partner")."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    table = elements()
    number = case.number
    problems: list[Problem] = []

    def problem(element: str, field: str, message: str) -> None:
        problems.append(Problem(number, element, field, message))

    missing = missing_criteria(case)
    for criterion in missing:
        element, field = CRITERION_PLACE[criterion]
        problem(
            element, field, _("Not a valid case: %(criterion)s is missing.") % {"criterion": criterion.label}
        )

    if not case.reactions.all() and Criterion.REACTION not in missing:
        problem("E.i.1.1a", "reactions", _("An ICSR reports at least one reaction."))
    today = timezone.localdate()
    rows = list(values(case))
    by_prefix: dict[tuple[str, str], object] = {}
    for element, field, value in rows:
        prefix = field.rsplit(".", 1)[0] if "[" in field else ""
        by_prefix[(prefix, element)] = value
        spec = table.get(element)
        if spec is None:
            continue
        name = field_label(field, spec)
        if _blank(value):
            if element in MEDDRA_ELEMENTS:
                if purpose == REGULATORY:
                    problem(element, field, _("%(name)s: the MedDRA code and version are required for a regulatory "
                                              "submission.") % {"name": name})  # fmt: skip
            elif spec.required and not spec.null_flavors:
                problem(element, field, _("%(name)s is required.") % {"name": name})
            continue
        text = str(value)
        if spec.max_length and isinstance(value, str) and len(text) > spec.max_length:
            problem(element, field, _("%(name)s is too long: %(length)d characters, at most %(max)d.")
                    % {"name": name, "length": len(text), "max": spec.max_length})  # fmt: skip
        if spec.data_type == "N" and isinstance(value, str):
            if spec.codes and text not in spec.codes:
                problem(element, field, _("%(name)s: %(value)s is not an allowed value.")
                        % {"name": name, "value": text})  # fmt: skip
            elif not spec.codes and not _NUMBER.match(text):
                problem(element, field, _("%(name)s must be a number, not “%(value)s”.")
                        % {"name": name, "value": text})  # fmt: skip
        elif (spec.data_type == "A" and not text.isascii()) or (
            element == "G.k.4.r.1b" and not (text.isascii() and text.isprintable() and " " not in text)
        ):  # a dose unit the regulator can read is a UCUM code ("毫克" goes out as mg, but "小勺" cannot)
            problem(
                element, field, _("%(name)s: “%(value)s” is not a code.") % {"name": name, "value": text}
            )
        if element in MEDDRA_CODES and re.fullmatch(r"\d+", text, re.ASCII) and not MEDDRA_CODE.fullmatch(text):
            # (a code that is not a number at all is told so above) the regulator finds no such term
            problem(element, field, _("%(name)s: a MedDRA code has 8 digits, not “%(value)s”.")
                    % {"name": name, "value": text})  # fmt: skip
        if element == "E.i.2.1a" and not MEDDRA_VERSION.fullmatch(text):
            problem(element, field, _("%(name)s: write the MedDRA version as its release, e.g. 27.1, not “%(value)s”.")
                    % {"name": name, "value": text})  # fmt: skip
        if spec.data_type == "Date/Time" and (day := _as_date(value)) and day > today:
            problem(element, field, _("%(name)s is in the future.") % {"name": name})

    for (prefix, element), value in by_prefix.items():
        needed = PAIRS.get(element)
        if needed and not _blank(value) and _blank(by_prefix.get((prefix, needed))):
            field = next(
                f for e, f, _v in rows if e == needed and (f.rsplit(".", 1)[0] if "[" in f else "") == prefix
            )
            other = next(
                f for e, f, _v in rows if e == element and (f.rsplit(".", 1)[0] if "[" in f else "") == prefix
            )
            if not any(p.field == field for p in problems):
                problem(needed, field, _("%(name)s is needed with %(other)s.")
                        % {"name": field_label(field, table[needed]),
                           "other": field_label(other, table[element])})  # fmt: skip

    version = meddra_version(case)
    for k, drug in enumerate(case.drugs.all()):
        if drug.indication_meddra and not version:
            problem("G.k.7.r.2a", "reactions[0].meddra_version",
                    _("The indication's MedDRA code of drug %(n)d needs the MedDRA version the case is coded in.")
                    % {"n": k + 1})  # fmt: skip
        if drug.start_date and drug.stop_date and (
            partial_dates.last_day(drug.stop_date, drug.stop_precision) < drug.start_date
        ):  # compared as periods: stopped in March is not before started on 15 March
            problem("G.k.4.r.5", f"drugs[{k}].stop_date", _("The drug was stopped before it was started."))
    for i, reaction in enumerate(case.reactions.all()):
        if reaction.onset_date and reaction.end_date and (
            partial_dates.last_day(reaction.end_date, reaction.end_precision) < reaction.onset_date
        ):  # compared as periods: an end in March is not before an onset on 15 March
            problem("E.i.5", f"reactions[{i}].end_date", _("The reaction ended before it started."))
    if case.received_at and case.latest_received_at and case.latest_received_at < case.received_at:
        problem("C.1.5", "latest_received_at", _("The most recent information predates the first receipt."))
    references = (case.literature or "").splitlines()
    for case_file in case.files.all():  # C.4.r.2: the copy of an article goes inside the file
        if case_file.literature in references and not case_file.file.storage.exists(case_file.file.name):
            problem("C.4.r.2", "literature", _("The copy of the article “%(name)s” is missing from the storage: "
                                               "attach it again.") % {"name": case_file.name})  # fmt: skip
    return problems
