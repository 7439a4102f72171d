"""Import of incoming ICSRs (ICH E2B(R3) `MCCI_IN200100UV01` batches from licensing partners and
distributors) into safety cases.

`parse()` turns a batch into one dict per `PORR_IN049016UV` message in the shape `services.create_case`
takes; `import_file()` writes them, all or nothing. A report whose worldwide case id (C.1.8.1) is already
known becomes a follow-up of that case, so re-importing a file never duplicates a case. Element paths
follow FDA's data-element table (pharmacrm/safety/data/e2b-r3/fda-icsr-data-elements.csv)."""

from __future__ import annotations

import datetime
import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from lxml import etree

from .. import conf, partial_dates
from ..choices import (
    ActionTaken,
    AgeUnit,
    CaseKind,
    Challenge,
    DrugRole,
    Expectedness,
    Outcome,
    Qualification,
    ReportType,
)
from ..models import Drug, Reaction, SafetyCase
from . import schema

NS = {"h": schema.HL7, "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
OID = "2.16.840.1.113883.3.989.2.1"  # ICH's code-system and identifier root
MEDDRA = "2.16.840.1.113883.6.163"
ISO_COUNTRY = "1.0.3166.1.2.2"
MAX_ERRORS_SHOWN = 20

# G.k.10.r "additional information on drug (coded)" that says what kind of case this is; the first found
# in this order wins (a medication error or a defective product matters more than how the drug was used).
KIND_BY_DRUG_INFO = {
    "7": CaseKind.MEDICATION_ERROR,
    "1": CaseKind.QUALITY,  # counterfeit
    "6": CaseKind.QUALITY,  # batch tested and found not within specifications
    "2": CaseKind.OVERDOSE,
    "8": CaseKind.MISUSE,
    "9": CaseKind.MISUSE,  # abuse
    "11": CaseKind.OFF_LABEL,
}
# G.k.9.i.4: 1 recurred, 2 did not recur, 3 rechallenge done but outcome unknown, 4 not done
RECHALLENGE = {"1": Challenge.YES, "2": Challenge.NO, "3": Challenge.UNKNOWN, "4": Challenge.NOT_DONE}
SERIOUSNESS_CODES = {  # E.i.3.2a-f
    "death": "34",
    "life_threatening": "21",
    "hospitalisation": "33",
    "disability": "35",
    "congenital": "12",
    "other_important": "26",
}
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


# ---------------------------------------------------------------------------------------------- helpers


def _x(node, path: str) -> list:
    return node.xpath(path, namespaces=NS)


def _first(node, path: str):
    found = _x(node, path)
    return found[0] if found else None


def _s(node, path: str) -> str:
    """The stripped text (or attribute value) at `path`, or "" when absent."""
    if node is None:
        return ""
    return str(node.xpath(f"string({path})", namespaces=NS)).strip()


def _true(node, path: str) -> bool:
    return _s(node, path).lower() == "true"


def _name(person) -> str:
    """A person's name without the title: given, middle and family parts in document order."""
    if person is None:
        return ""
    parts = [str(p).strip() for p in _x(person, "h:name/h:given/text() | h:name/h:family/text()")]
    return " ".join(p for p in parts if p)


class _Case:
    """The dict being built for one report, with the warnings raised while building it."""

    def __init__(self, label: str):
        self.label = label
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.label}: {message}")

    def fit(self, model, field: str, value: str, where: str = "") -> str:
        """`value` cut to the model field's length, with a warning when something is cut."""
        limit = model._meta.get_field(field).max_length
        if limit and len(value) > limit:
            self.warn(
                _("%(element)s was longer than %(limit)s characters and was shortened.")
                % {"element": where or field, "limit": limit}
            )
            return value[:limit]
        return value

    def choice(self, choices, value: str, where: str) -> str:
        """A coded value, or "" with a warning when the code is not one the model knows."""
        if value and value not in choices.values:
            self.warn(
                _("%(element)s: code %(code)s is not known and was left empty.")
                % {"element": where, "code": value}
            )
            return ""
        return value

    def partial_date(self, value: str, where: str, name: str) -> dict:
        """A reaction's start or end (E.i.4 / E.i.5), kept at the precision sent — YYYYMMDD, YYYYMM or YYYY, as E2B(R3)
        allows for them: {"onset_date": the period's first day, "onset_precision": day, month or year}."""
        parsed = partial_dates.parse_e2b(value) if value else None
        if value and parsed is None:
            self.warn(
                _("%(element)s: %(value)s is not a date and was left empty.")
                % {"element": where, "value": value}
            )
        date, precision = parsed or (None, partial_dates.Precision.DAY)
        return {f"{name}_date": date, f"{name}_precision": precision}

    def drug_period(self, starts: list[str], stops: list[str], where: str) -> dict:
        """A drug's start and stop (G.k.4.r.4 / G.k.4.r.5) over all its dosages, kept at the precision sent: the
        earliest start and the latest stop, compared as periods (stopped in 2026 ends after stopped on 10 March
        2026); as {"start_date", "start_precision", "stop_date", "stop_precision"}."""
        finer = {partial_dates.Precision.DAY: 0, partial_dates.Precision.MONTH: 1, partial_dates.Precision.YEAR: 2}
        first = [self.partial_date(v, f"{where}.4", "start") for v in starts]
        last = [self.partial_date(v, f"{where}.5", "stop") for v in stops]
        first = [d for d in first if d["start_date"]]
        last = [d for d in last if d["stop_date"]]
        start = min(first, key=lambda d: (d["start_date"], finer[d["start_precision"]]), default=None)
        stop = max(last, key=lambda d: (partial_dates.last_day(d["stop_date"], d["stop_precision"]),
                                        -finer[d["stop_precision"]]), default=None)  # fmt: skip
        return {**(start or self.partial_date("", "", "start")), **(stop or self.partial_date("", "", "stop"))}

    def date(self, value: str, where: str) -> datetime.date | None:
        """An E2B date (YYYY[MM[DD[...]]]); a partial date becomes its first day, with a warning."""
        if not value:
            return None
        match = _TS.match(value)
        if not match:
            self.warn(
                _("%(element)s: %(value)s is not a date and was left empty.")
                % {"element": where, "value": value}
            )
            return None
        year, month, day = match.group(1), match.group(2), match.group(3)
        if not (month and day):
            self.warn(
                _("%(element)s: only part of the date (%(value)s) is known; the first day was used.")
                % {"element": where, "value": value}
            )
        try:
            return datetime.date(int(year), int(month or 1), int(day or 1))
        except ValueError:
            self.warn(
                _("%(element)s: %(value)s is not a date and was left empty.")
                % {"element": where, "value": value}
            )
            return None


def parse_datetime(value: str) -> datetime.datetime | None:
    """An E2B timestamp as an aware datetime in the company's time zone. Without a UTC offset the
    timestamp is taken as local (China) time; a date alone is midnight."""
    match = _TS.match(value or "")
    if not match:
        return None
    year, month, day, hour, minute, second, offset = match.groups()
    local = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    try:
        naive = datetime.datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    if not 1900 <= naive.year <= 2999:  # schema-valid, but no ICSR is dated so (and the database could not store it)
        return None
    if offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:  # real UTC offsets run from -12:00 to +14:00
            return None
        sign = 1 if offset[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
        return naive.replace(tzinfo=tz).astimezone(local)
    return naive.replace(tzinfo=local)


# ----------------------------------------------------------------------------------------------- parse


def load(data: bytes, name: str = schema.BATCH) -> etree._ElementTree:
    """Parse and schema-validate an incoming E2B(R3) document, or refuse it with the reasons."""
    if len(data) > schema.max_bytes():
        raise ValidationError({"file": [schema.too_large()]})
    try:
        tree = schema.parse(data)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else 0)
        raise ValidationError(
            {
                "file": [
                    _("The file is not well-formed XML (line %(line)s: %(reason)s).")
                    % {"line": line, "reason": exc.msg}
                ]
            }
        ) from exc
    except ValueError as exc:  # lxml refuses e.g. a str with an encoding declaration
        raise ValidationError(
            {"file": [_("The file is not well-formed XML (%(reason)s).") % {"reason": exc}]}
        ) from exc
    errors = schema.validate(tree, name)
    if errors:
        messages = [
            _("Line %(line)s: %(message)s") % {"line": e.line, "message": e.message}
            for e in errors[:MAX_ERRORS_SHOWN]
        ]
        if len(errors) > MAX_ERRORS_SHOWN:
            messages.append(_("… and %(count)s more errors.") % {"count": len(errors) - MAX_ERRORS_SHOWN})
        title = _("The file does not validate against the E2B(R3) schema %(schema)s.") % {"schema": name}
        raise ValidationError({"file": [title, *messages]})
    return tree


def parse(data: bytes, *, source_name: str = "") -> list[dict]:
    """One case dict per ICSR in the batch (keys: SafetyCase fields, plus "drugs", "reactions" and
    "warnings" — what had to be shortened or left out, for the importing officer to check)."""
    tree = load(data, schema.BATCH)
    messages = _x(tree.getroot(), "h:PORR_IN049016UV")
    return [_parse_report(msg, n, source_name) for n, msg in enumerate(messages, start=1)]


def _parse_report(message, n: int, source_name: str) -> dict:
    ie = _first(message, "h:controlActProcess/h:subject/h:investigationEvent")
    sender_case_id = _s(ie, f"h:id[@root='{OID}.3.1']/@extension")
    worldwide_id = _s(ie, f"h:id[@root='{OID}.3.2']/@extension")
    b = _Case(_("Report %(n)s (%(id)s)") % {"n": n, "id": worldwide_id or sender_case_id or "?"})
    aea = _first(ie, "h:component/h:adverseEventAssessment")
    role = _first(aea, "h:subject1/h:primaryRole") if aea is not None else None

    received_at = parse_datetime(_s(ie, "h:effectiveTime/h:low/@value"))
    if received_at is None:
        raise ValidationError(
            {
                "file": [
                    b.label
                    + ": "
                    + _("the date the report was first received (C.1.4) is missing or invalid.")
                ]
            }
        )
    latest = parse_datetime(_s(ie, "h:availabilityTime/@value"))
    if latest is None or latest > timezone.now() + datetime.timedelta(days=1):  # unknown, or in the future
        latest = received_at
    # a sender's C.1.5 before its own C.1.4, or a date of a time zone ahead of ours, within what the case takes
    latest = min(max(latest, received_at), max(timezone.now(), received_at))

    reactions = [_parse_reaction(obs, i, b) for i, obs in enumerate(_reactions(role), start=1)]
    drugs = _parse_drugs(aea, role, b)
    reporter = _primary_source(ie)
    sender_org = _s(
        ie,
        f"h:subjectOf1/h:controlActEvent/h:author/h:assignedEntity[h:code/@codeSystem='{OID}.1.7']"
        "/h:representedOrganization/h:assignedEntity/h:representedOrganization/h:name",
    )
    country = (
        _s(
            role,
            f"h:subjectOf2/h:observation[h:code/@code='29']/h:location/h:locatedEntity/h:locatedPlace/h:code[@codeSystem='{ISO_COUNTRY}']/@code",
        )
        if role is not None
        else ""
    )
    reporter_country = _s(
        reporter, f"h:assignedPerson/h:asLocatedEntity/h:location/h:code[@codeSystem='{ISO_COUNTRY}']/@code"
    )
    country = (country or reporter_country).upper()

    case: dict = {
        "kind": _kind(aea, role, drugs),
        "received_at": received_at,
        "latest_received_at": latest,
        "report_type": b.choice(
            ReportType,
            _s(
                ie,
                f"h:subjectOf2/h:investigationCharacteristic[h:code/@code='1'][h:code/@codeSystem='{OID}.1.23']/h:value/@code",
            ),
            "C.1.3",
        )
        or ReportType.UNKNOWN.value,
        "worldwide_id": b.fit(SafetyCase, "worldwide_id", worldwide_id, "C.1.8.1"),
        "sender_case_id": b.fit(SafetyCase, "sender_case_id", sender_case_id, "C.1.1"),
        "imported_from": b.fit(
            SafetyCase, "imported_from", " — ".join(p for p in (sender_org, source_name) if p), "C.3.2"
        ),
        "expectedness": Expectedness.UNKNOWN.value,
        "narrative": _s(ie, "h:text"),
        "reporter_comment": _comment(aea, "3"),
        "sender_comment": _comment(aea, "1"),
        # C.4.r.1, one reference a line, and the copies of their articles (C.4.r.2)
        **_literature(ie, b),
        **_patient(role, b),
        **_reporter(reporter, b),
        "drugs": drugs,
        "reactions": reactions,
    }
    if country:
        case["country"] = b.fit(SafetyCase, "country", country, "E.i.9 / C.2.r.3")
    characteristic = f"h:subjectOf2/h:investigationCharacteristic[h:code/@codeSystem='{OID}.1.23']"
    if _s(ie, f"{characteristic}[h:code/@code='3']/h:value/@code") == "1":  # C.1.11.1: a nullification
        # C.1.11.2, its reason (the IG requires it; a sender that leaves it out is named so); import_file nullifies
        # the case the report is about instead of opening one
        case["nullification"] = _s(ie, f"{characteristic}[h:code/@code='4']/h:value/h:originalText")[:2000]
    case["warnings"] = b.warnings
    return case


def _reference_text(text: str) -> str:
    return " ".join(text.split())[:500].strip()


def _literature(ie, b: _Case) -> dict:
    """C.4.r: {"literature": the references, one a line; "literature_copies": [(reference, file name, bytes)] of
    the articles included (C.4.r.2)} — a copy that cannot be read or is not a PDF is left out with a warning."""
    from ..services import check_literature_copy

    references, copies = [], []
    for n, document in enumerate(
        _x(ie, f"h:reference/h:document[h:code/@code='2'][h:code/@codeSystem='{OID}.1.27']"), start=1
    ):
        reference = _reference_text(_s(document, "h:bibliographicDesignationText"))
        if reference:
            references.append(reference)
        text = _first(document, "h:text")
        if text is None or not "".join(text.itertext()).strip():
            continue
        name = _s(text, "h:reference/@value")
        try:
            if not reference:
                raise ValidationError(_("it has no literature reference (C.4.r.1) to belong to."))
            data = _included(text)
            name, _kind = check_literature_copy(name or f"C.4.r.{n}.pdf", data, field="file")
        except ValidationError as exc:
            b.warn(_("the copy of the article of literature reference %(n)d (C.4.r.2) was left out: %(reason)s")
                   % {"n": n, "reason": " ".join(exc.messages)})  # fmt: skip
            continue
        copies.append((reference, name, data))
    return {"literature": "\n".join(references), "literature_copies": copies}


def _included(text) -> bytes:
    """The bytes of an ED element (C.1.6.1.r.2, C.4.r.2): base64, compressed or not (ICH allows deflate, gzip and
    zlib), never beyond the size a copy may have (a small file that inflates to gigabytes is refused)."""
    import base64
    import binascii
    import zlib

    from ..services import literature_copy_limit

    limit = literature_copy_limit()
    content = (text.text or "") + "".join(child.tail or "" for child in text)
    if text.get("representation", "TXT") != "B64":
        raise ValidationError(_("it is not base64 (representation B64)."))
    try:
        data = base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(_("its base64 is damaged.")) from None
    compression = text.get("compression", "")
    if not compression:
        return data
    wbits = {"DF": -15, "ZL": 15, "GZ": 31}.get(compression)
    if wbits is None:
        raise ValidationError(_("its compression %(code)s is not one this system reads.") % {"code": compression})
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise ValidationError(_("its compressed content is damaged.")) from None
    if len(out) > limit or inflater.unconsumed_tail:
        from django.template.defaultfilters import filesizeformat

        raise ValidationError(_("it is larger than %(max)s.") % {"max": filesizeformat(limit)})
    return out


def _reactions(role) -> list:
    if role is None:
        return []
    return _x(role, f"h:subjectOf2/h:observation[h:id][h:code/@code='29'][h:code/@codeSystem='{OID}.1.19']")


def _comment(aea, author_code: str) -> str:
    """H.2 (author 3, the reporter) or H.4 (author 1, the sender)."""
    if aea is None:
        return ""
    return _s(
        aea,
        f"h:component1/h:observationEvent[h:code/@code='10'][h:author/h:assignedEntity/h:code/@code='{author_code}']"
        "/h:value",
    )


def _primary_source(ie):
    """The reporter: the primary source for regulatory purposes (C.2.r.5 = 1), else the first."""
    sources = _x(
        ie, f"h:outboundRelationship[h:relatedInvestigation/h:code[@code='2'][@codeSystem='{OID}.1.22']]"
    )
    if not sources:
        return None
    chosen = next((s for s in sources if _s(s, "h:priorityNumber/@value") == "1"), sources[0])
    return _first(chosen, "h:relatedInvestigation/h:subjectOf2/h:controlActEvent/h:author/h:assignedEntity")


def _reporter(entity, b: _Case) -> dict:
    if entity is None:
        return {}
    person = _first(entity, "h:assignedPerson")
    phone = _s(entity, "h:telecom[starts-with(@value, 'tel:')]/@value")[4:]
    email = _s(entity, "h:telecom[starts-with(@value, 'mailto:')]/@value")[7:]
    organisation = _s(entity, "h:representedOrganization/h:assignedEntity/h:representedOrganization/h:name")
    department = _s(entity, "h:representedOrganization/h:name")
    qualification = _s(person, f"h:asQualifiedEntity/h:code[@codeSystem='{OID}.1.6']/@code")
    country = _s(person, f"h:asLocatedEntity/h:location/h:code[@codeSystem='{ISO_COUNTRY}']/@code").upper()
    result = {
        "reporter_name": _name(person),
        "reporter_contact": "; ".join(p for p in (phone, email) if p),
        "reporter_institution": ", ".join(p for p in (organisation, department) if p),
        "reporter_qualification": b.choice(Qualification, qualification, "C.2.r.4"),
    }
    if country:
        result["reporter_country"] = b.fit(SafetyCase, "reporter_country", country, "C.2.r.3")
    return result


def _patient(role, b: _Case) -> dict:
    if role is None:
        return {}
    player = _first(role, "h:player1")

    def observation(code: str, what: str = "@value") -> str:
        return _s(
            role,
            f"h:subjectOf2/h:observation[h:code/@code='{code}'][h:code/@codeSystem='{OID}.1.19']/h:value/{what}",
        )

    sex = _s(player, "h:administrativeGenderCode/@code")
    history = _history(role, b)
    pregnancy = []
    if lmp := b.date(observation("22"), "D.6"):
        pregnancy.append(_("Last menstrual period: %(date)s") % {"date": lmp.isoformat()})
    if gestation := observation("16"):
        pregnancy.append(
            _("Gestation period when the reaction was observed in the foetus: %(value)s %(unit)s")
            % {"value": gestation, "unit": observation("16", "@unit")}
        )
    for drug in _x(role, "h:subjectOf2/h:organizer[h:code/@code='4']/h:component/h:substanceAdministration"):
        gk6 = _first(drug, "h:outboundRelationship2/h:observation[h:code/@code='16']/h:value")
        if gk6 is not None and gk6.get("value"):
            pregnancy.append(
                _("Gestation period at exposure to %(drug)s: %(value)s %(unit)s")
                % {"drug": _s(drug, "h:consumable/h:instanceOfKind/h:kindOfProduct/h:name"),
                   "value": gk6.get("value"), "unit": gk6.get("unit", "")}
            )  # fmt: skip
    return {
        "patient_name": _s(player, "h:name"),
        "patient_sex": sex if sex in ("1", "2") else "",
        "patient_birth_date": b.date(_s(player, "h:birthTime/@value"), "D.2.1"),
        **_age(observation("3"), observation("3", "@unit"), b),
        "patient_weight_kg": observation("7"),
        "patient_height_cm": observation("17"),
        "patient_pregnancy": "\n".join(pregnancy),
        "patient_history": history,
        "patient_record_number": _s(player, f"h:asIdentifiedEntity/h:id[@root='{OID}.3.9']/@extension"),
    }


def _age(value: str, unit: str, b: _Case) -> dict:
    """D.2.2a/b; an age in a unit the model does not know is left out (with a warning) rather than being
    read as years."""
    if value and unit not in AgeUnit.values:
        b.warn(
            _("D.2.2: the age %(value)s %(unit)s is in an unknown unit and was left out.")
            % {"value": value, "unit": unit}
        )
        return {"patient_age": "", "patient_age_unit": ""}
    return {"patient_age": value, "patient_age_unit": unit if value else ""}


def _history(role, b: _Case) -> str:
    """D.7.2 text, then each coded condition (D.7.1.r) and each earlier drug (D.8.r) as a line."""
    organizer = _first(role, f"h:subjectOf2/h:organizer[h:code/@code='1'][h:code/@codeSystem='{OID}.1.20']")
    lines = []
    if organizer is not None:
        text = _s(organizer, "h:component/h:observation[h:code/@code='18']/h:value")
        if text:
            lines.append(text)
        for obs in _x(organizer, f"h:component/h:observation[h:code/@codeSystem='{MEDDRA}']"):
            parts = [_("MedDRA %(code)s") % {"code": _s(obs, "h:code/@code")}]
            start, end = _s(obs, "h:effectiveTime/h:low/@value"), _s(obs, "h:effectiveTime/h:high/@value")
            if start or end:
                parts.append(f"{start or '?'}–{end or '?'}")
            if _true(obs, "h:inboundRelationship/h:observation[h:code/@code='13']/h:value/@value"):
                parts.append(_("continuing"))
            if _true(obs, "h:outboundRelationship2/h:observation[h:code/@code='38']/h:value/@value"):
                parts.append(_("family history"))
            if comment := _s(obs, "h:outboundRelationship2/h:observation[h:code/@code='10']/h:value"):
                parts.append(comment)
            lines.append(", ".join(parts))
    drugs = _first(role, f"h:subjectOf2/h:organizer[h:code/@code='2'][h:code/@codeSystem='{OID}.1.20']")
    if drugs is not None:
        for sa in _x(drugs, "h:component/h:substanceAdministration"):
            name = _s(sa, "h:consumable/h:instanceOfKind/h:kindOfProduct/h:name")
            if name:
                lines.append(_("Previous drug: %(name)s") % {"name": name})
    return "\n".join(lines)


def _parse_reaction(obs, i: int, b: _Case) -> dict:
    where = f"E.{i}"
    value = _first(obs, f"h:value[@codeSystem='{MEDDRA}']")
    native = _s(value, "h:originalText") if value is not None else ""
    translated = _s(obs, "h:outboundRelationship2/h:observation[h:code/@code='30']/h:value")
    llt = value.get("code", "") if value is not None else ""
    verbatim = native or translated
    if not verbatim:
        verbatim = _("MedDRA %(code)s") % {"code": llt} if llt else _("(not reported)")
        b.warn(_("%(element)s: the reaction as reported (E.i.1) is missing.") % {"element": where})
    if native and translated and translated != native:
        b.warn(
            _("%(element)s: the translation %(text)s was not kept.") % {"element": where, "text": translated}
        )

    def flag(code: str) -> bool:
        return _true(
            obs,
            f"h:outboundRelationship2/h:observation[h:code/@code='{code}'][h:code/@codeSystem='{OID}.1.19']/h:value/@value",
        )

    end = _s(obs, "h:effectiveTime/h:high/@value") or _s(obs, "h:effectiveTime/h:comp/h:high/@value")
    start = _s(obs, "h:effectiveTime/h:low/@value") or _s(obs, "h:effectiveTime/h:comp/h:low/@value")
    return {
        "verbatim": b.fit(Reaction, "verbatim", verbatim, f"{where}.1"),
        "language": b.fit(
            Reaction, "language", _s(value, "h:originalText/@language") if native else "", f"{where}.1.1b"
        ),
        "meddra_version": b.fit(
            Reaction,
            "meddra_version",
            value.get("codeSystemVersion", "") if value is not None else "",
            f"{where}.2.1a",
        ),
        "meddra_llt": b.fit(Reaction, "meddra_llt", llt, f"{where}.2.1b"),
        **b.partial_date(start, f"{where}.4", "onset"),
        **b.partial_date(end, f"{where}.5", "end"),
        "outcome": b.choice(
            Outcome,
            _s(
                obs,
                f"h:outboundRelationship2/h:observation[h:code/@code='27']/h:value[@codeSystem='{OID}.1.11']/@code",
            ),
            f"{where}.7",
        ),
        **{field: flag(code) for field, code in SERIOUSNESS_CODES.items()},
    }


def _parse_drugs(aea, role, b: _Case) -> list[dict]:
    if role is None:
        return []
    roles = {}
    if aea is not None:
        for ca in _x(
            aea, f"h:component/h:causalityAssessment[h:code/@code='20'][h:code/@codeSystem='{OID}.1.19']"
        ):
            roles[_s(ca, "h:subject2/h:productUseReference/h:id/@root")] = _s(ca, "h:value/@code")
    organizer = _first(role, f"h:subjectOf2/h:organizer[h:code/@code='4'][h:code/@codeSystem='{OID}.1.20']")
    if organizer is None:
        return []
    return [
        _parse_drug(sa, k, roles, b)
        for k, sa in enumerate(_x(organizer, "h:component/h:substanceAdministration[h:id]"), start=1)
    ]


def _parse_drug(sa, k: int, roles: dict, b: _Case) -> dict:
    where = f"G.{k}"
    product = _first(sa, "h:consumable/h:instanceOfKind/h:kindOfProduct")
    approval = (
        _first(product, "h:asManufacturedProduct/h:subjectOf/h:approval") if product is not None else None
    )
    dosages = _x(sa, "h:outboundRelationship2/h:substanceAdministration")
    first = dosages[0] if dosages else None
    role = roles.get(sa.xpath("string(h:id/@root)", namespaces=NS), "")
    if not role:
        b.warn(
            _("%(element)s: the drug's role (G.k.1) is missing; it was taken as suspect.")
            % {"element": where}
        )
        role = DrugRole.SUSPECT.value
    lots = []
    for dosage in dosages:
        lot = _s(dosage, "h:consumable/h:instanceOfKind/h:productInstanceInstance/h:lotNumberText")
        if lot and lot not in lots:
            lots.append(lot)
    starts = [
        d
        for dosage in dosages
        for d in _x(dosage, "h:effectiveTime/h:low/@value | h:effectiveTime/h:comp/h:low/@value")
    ]
    stops = [
        d
        for dosage in dosages
        for d in _x(dosage, "h:effectiveTime/h:high/@value | h:effectiveTime/h:comp/h:high/@value")
    ]
    period = _first(first, "h:effectiveTime/h:comp/h:period") if first is not None else None
    indications = _x(
        sa, f"h:inboundRelationship/h:observation[h:code/@code='19'][h:code/@codeSystem='{OID}.1.19']/h:value"
    )
    indication_text = "; ".join(t for t in (_s(v, "h:originalText") for v in indications) if t)
    indication_codes = [v.get("code") for v in indications if v.get("code")]
    rechallenges = [
        _s(obs, "h:value/@code")
        for obs in _x(
            sa, f"h:outboundRelationship2/h:observation[h:code/@code='31'][h:code/@codeSystem='{OID}.1.19']"
        )
    ]
    rechallenge = next((RECHALLENGE[c].value for c in ("1", "2", "3", "4") if c in rechallenges), "")
    if len(indication_codes) > 1:
        b.warn(_("%(element)s: only the first coded indication was kept.") % {"element": where})
    route = ""
    if first is not None:
        route = _s(first, "h:routeCode/h:originalText") or _s(first, "h:routeCode/@code")
    dose = _first(first, "h:doseQuantity") if first is not None else None
    return {
        "role": b.choice(DrugRole, role, f"{where}.1") or DrugRole.SUSPECT.value,
        "brand_name": b.fit(Drug, "brand_name", _s(product, "h:name"), f"{where}.2.2"),
        "generic_name": b.fit(
            Drug,
            "generic_name",
            ", ".join(_x(product, "h:ingredient/h:ingredientSubstance/h:name/text()")).strip()
            if product is not None
            else "",
            f"{where}.2.3",
        ),  # fmt: skip
        "approval_number": b.fit(
            Drug, "approval_number", _s(approval, f"h:id[@root='{OID}.3.4']/@extension"), f"{where}.3.1"
        ),
        "manufacturer": b.fit(
            Drug, "manufacturer", _s(approval, "h:holder/h:role/h:playingOrganization/h:name"), f"{where}.3.3"
        ),
        "dosage_form": b.fit(
            Drug,
            "dosage_form",
            _s(first, "h:consumable/h:instanceOfKind/h:kindOfProduct/h:formCode/h:originalText"),
            f"{where}.4.9.1",
        ),
        "batch": b.fit(Drug, "batch", ", ".join(lots), f"{where}.4.7"),
        "dose": b.fit(Drug, "dose", dose.get("value", "") if dose is not None else "", f"{where}.4.1a"),
        "dose_unit": b.fit(
            Drug, "dose_unit", dose.get("unit", "") if dose is not None else "", f"{where}.4.1b"
        ),
        "route": b.fit(Drug, "route", route, f"{where}.4.10"),
        "frequency": b.fit(Drug, "frequency", _frequency(first, period), f"{where}.4.2 / {where}.4.8"),
        **b.drug_period(starts, stops, f"{where}.4"),
        "indication": b.fit(Drug, "indication", indication_text, f"{where}.7.1"),
        "indication_meddra": b.fit(
            Drug, "indication_meddra", indication_codes[0] if indication_codes else "", f"{where}.7.2b"
        ),
        "action_taken": b.choice(
            ActionTaken,
            _s(sa, f"h:inboundRelationship/h:act/h:code[@codeSystem='{OID}.1.15']/@code"),
            f"{where}.8",
        ),
        "rechallenge": rechallenge,
    }


def _frequency(dosage, period) -> str:
    """G.k.4.r.2/3 ("10 d": every ten days), else the dosage text (G.k.4.r.8), which is where a frequency
    given in words ("2 times a day with food") is written."""
    if period is not None and period.get("value"):
        return f"{period.get('value')} {period.get('unit', '')}".strip()
    return " ".join(_s(dosage, "h:text").split()) if dosage is not None else ""


def _kind(aea, role, drugs: list[dict]) -> str:
    """Adverse reaction, unless the coded drug information (G.k.10.r) of a suspect or interacting drug says
    it is a medication error, a quality defect, an overdose, misuse or off-label use."""
    if role is None:
        return CaseKind.ADVERSE_REACTION.value
    organizer = _first(role, f"h:subjectOf2/h:organizer[h:code/@code='4'][h:code/@codeSystem='{OID}.1.20']")
    codes: set[str] = set()
    if organizer is not None:
        for k, sa in enumerate(_x(organizer, "h:component/h:substanceAdministration[h:id]")):
            if k < len(drugs) and drugs[k]["role"] not in (DrugRole.SUSPECT, DrugRole.INTERACTING):
                continue
            codes.update(
                _x(sa, f"h:outboundRelationship2/h:observation[h:code/@code='9'][h:code/@codeSystem='{OID}.1.19']"
                       f"/h:value[@codeSystem='{OID}.1.17']/@code")
            )  # fmt: skip
    return next(
        (kind for code, kind in KIND_BY_DRUG_INFO.items() if code in codes), CaseKind.ADVERSE_REACTION
    )


# ---------------------------------------------------------------------------------------------- import

NOT_COMPARED = frozenset({"received_at", "imported_from", "warnings", "drugs", "reactions", "literature_copies"})


def _existing(case_dict: dict) -> SafetyCase | None:
    """The case this report is about: same worldwide id (C.1.8.1), or — a partner sending back a case we
    reported — our own number inside the id our export gives (C.1.1 "CN-PHARMACRM-AE-2026-000001")."""
    wid = case_dict.get("worldwide_id") or case_dict.get("sender_case_id") or ""
    if not wid:
        return None
    found = SafetyCase.objects.filter(worldwide_id=wid).order_by("id").first()
    if found is None and _own_id(wid):
        found = SafetyCase.objects.filter(number=_own_id(wid)).first()
    return found


def _rows_same(existing, rows: list[dict]) -> bool:
    existing = list(existing)
    return len(existing) == len(rows) and all(
        all(getattr(old, key) == value for key, value in new.items())
        for old, new in zip(existing, rows, strict=True)
    )


def unchanged(case: SafetyCase, case_dict: dict) -> bool:
    """Whether the report says nothing the case does not already hold (a file imported again)."""
    for key, value in case_dict.items():
        if key not in NOT_COMPARED and getattr(case, key) != value:
            return False
    return _rows_same(case.drugs.all(), case_dict.get("drugs", [])) and _rows_same(
        case.reactions.all(), case_dict.get("reactions", [])
    )


class Imported(list):
    """The cases of an imported batch; `not_held`: a line for each nullification (C.1.11.1 = 1) of a case PharmaCRM
    never received — no case was opened for it, and nothing was nullified."""

    def __init__(self) -> None:
        super().__init__()
        self.not_held: list[str] = []


def import_file(user, data: bytes, *, source_name: str) -> Imported:
    """Import every ICSR of a batch, all or nothing: a new case per report, or a follow-up of the case
    with the same worldwide id (nothing at all when the report brings nothing new). A nullification report nullifies
    the case it names, with the sender's reason, and opens none. Each returned case carries `import_warnings`: what
    was shortened or left out, for the officer to check."""
    from .. import services  # the service layer imports the E2B package; import late to avoid a cycle

    services.require(user)
    cases = Imported()
    with transaction.atomic():
        for case_dict in parse(data, source_name=source_name):
            warnings = case_dict.pop("warnings")
            copies = case_dict.pop("literature_copies", [])
            nullification = case_dict.pop("nullification", None)
            label = case_dict.get("worldwide_id") or case_dict.get("sender_case_id") or "?"
            if nullification is not None:
                case = _nullify(services, user, case_dict, nullification, warnings, cases.not_held)
                if case is not None:
                    case.import_warnings = warnings
                    cases.append(case)
                continue
            for field, problems in services.coded_problems(case_dict).items():  # kept as sent: to be corrected
                warnings.extend(_("%(id)s: %(field)s: %(problem)s Correct it on the case before it is reported.")
                                % {"id": label, "field": field, "problem": problem} for problem in problems)  # fmt: skip
            try:
                case = _import_one(services, user, case_dict, warnings)
                _keep_copies(services, user, case, copies)
            except ValidationError as exc:
                raise ValidationError({"file": _explain(label, exc)}) from exc
            case.import_warnings = warnings
            cases.append(case)
    return cases


def _own_id(wid: str) -> str:
    """Our case number when `wid` is an id our exports give (C.1.1 / C.1.8.1 "CN-PHARMACRM-AE-2026-000001")."""
    own = re.fullmatch(rf"[A-Z]{{2}}-{re.escape(conf.sender_org_code())}-((?:AE|QC)-\d{{4}}-\d{{6}})", wid or "")
    return own.group(1) if own else ""


def _nullify(services, user, case_dict: dict, reason: str, warnings: list[str], not_held: list[str]):
    """A nullification (C.1.11.1 = 1): the sender says the case it sent is void (a duplicate, sent in error, not a
    valid case). The case imported before under the same worldwide case id (C.1.8.1, else C.1.1) is nullified with
    the sender's reason — its clocks stop, the status change is audited — and no case is opened: a void report
    owes no one a report. A case of our own (the id is one our exports give) is not the sender's to void: it stays
    as it is, with a note. A nullification of a case never received opens nothing either: it is listed
    (`not_held`) and audited."""
    from ..choices import CaseStatus
    from ..services import A, _record

    wid = case_dict.get("worldwide_id") or case_dict.get("sender_case_id") or ""
    source = case_dict.get("imported_from") or "E2B"
    given = reason or _("no reason given (C.1.11.2 is empty)")
    case = _existing(case_dict)
    if case is None:
        not_held.append(
            _("%(id)s: the sender nullified this report (C.1.11.1; reason: %(reason)s), but no case with this "
              "worldwide case id (C.1.8.1) was received before: nothing was nullified and no case was opened.")
            % {"id": wid or "?", "reason": given}
        )  # fmt: skip
        _record(A.IMPORT, ("safety.safetycase", "", wid), user, format="E2B(R3) ICSR", source=source,
                nullification=True, reason=reason, outcome="no such case")  # fmt: skip
        return None
    if _own_id(wid):
        warnings.append(
            _("%(number)s: the sender nullified its report of this case (C.1.11.1; reason: %(reason)s). The case is "
              "ours and was not changed: check with the sender.")
            % {"number": case.number, "reason": given}
        )  # fmt: skip
        return case
    if case.status == CaseStatus.NULLIFIED:  # the same nullification imported again
        return case
    services.set_status(user, case, CaseStatus.NULLIFIED, reason=_(
        "Nullified by the sender (%(source)s, C.1.11.1): %(reason)s") % {"source": source, "reason": given})
    warnings.append(_("%(number)s was nullified: the sender nullified its report (reason: %(reason)s).")
                    % {"number": case.number, "reason": given})  # fmt: skip
    if case.icsr_messages.exists() or case.submissions.exists():
        warnings.append(_("%(number)s was reported before: send its nullification report (export it as "
                          "\"Nullification\").") % {"number": case.number})  # fmt: skip
    return SafetyCase.objects.get(pk=case.pk)


def _import_one(services, user, case_dict: dict, warnings: list[str]) -> SafetyCase:
    case = _existing(case_dict)
    if case is None:
        return services.create_case(user, case_dict, as_sent=True)  # its codes as the sender wrote them
    if unchanged(case, case_dict):
        return case
    received_at = case_dict["latest_received_at"]
    if received_at < case.latest_received_at:
        warnings.append(
            _("%(id)s: this report is older than what the case holds (%(date)s) and was not applied.")
            % {"id": case.number, "date": timezone.localdate(case.latest_received_at).isoformat()}
        )
        return case
    # day 0, the kind (it numbers the case) and where the case first came from stay; the summary names the file
    follow_up = {k: v for k, v in case_dict.items() if k not in ("received_at", "kind", "imported_from")}
    summary = _("Follow-up imported from %(source)s.") % {"source": case_dict.get("imported_from") or "E2B"}
    if warnings:
        summary += "\n" + "\n".join(warnings)
    services.add_follow_up(
        user, case, follow_up, received_at=max(received_at, case.received_at), summary=summary, as_sent=True
    )
    return SafetyCase.objects.get(pk=case.pk)


def _keep_copies(services, user, case: SafetyCase, copies: list[tuple[str, str, bytes]]) -> None:
    """The copies of the articles (C.4.r.2) on the case, each with its reference; one the case holds already (the
    same file imported again) is not stored twice."""
    references = services.literature_references(case)
    held = services.literature_copies(case)
    for reference, name, data in copies:
        if reference not in references:  # a report not applied (older than the case)
            continue
        if reference in held and held[reference].size == len(data):
            try:
                with held[reference].file.open("rb") as handle:
                    if handle.read() == data:
                        continue
            except FileNotFoundError:
                pass
        services.attach_literature_copy(user, case, references.index(reference) + 1, name=name, data=data)


def _explain(label: str, exc: ValidationError) -> list[str]:
    """A service's field errors, as lines naming the report and the field."""
    if hasattr(exc, "message_dict"):
        return [f"{label}: {field}: {msg}" for field, msgs in exc.message_dict.items() for msg in msgs]
    return [f"{label}: {msg}" for msg in exc.messages]
