"""Safety cases as an ICH E2B(R3) ICSR batch: an HL7 v3 MCCI_IN200100UV01 with one PORR_IN049016UV per case,
laid out like FDA's example instances (same OIDs, code systems and element order).

`build()` only writes XML; `release()` is what the button, the API and the command call: it runs the
business rules (rules.py) and the schema, and refuses the whole batch with everything to fill in rather than
let a half-valid file leave the company."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.db.models import QuerySet, prefetch_related_objects
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from lxml import etree

from .. import conf, partial_dates
from . import rules, schema
from .rules import Problem

HL7 = schema.HL7
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE = f"{{{XSI}}}type"
NSMAP = {None: HL7, "xsi": XSI}
PREFETCH = ("drugs__product", "reactions", "versions", "files")

# OIDs of the ICH E2B(R3) implementation guide, as the FDA examples use them
OID = "2.16.840.1.113883.3.989.2.1"
BATCH_ID = f"{OID}.3.22"  # N.1.2
BATCH_SENDER = f"{OID}.3.13"  # N.1.3
BATCH_RECEIVER = f"{OID}.3.14"  # N.1.4
MESSAGE_ID = f"{OID}.3.1"  # N.2.r.1, and C.1.1
MESSAGE_SENDER = f"{OID}.3.11"  # N.2.r.2
MESSAGE_RECEIVER = f"{OID}.3.12"  # N.2.r.3
WORLDWIDE_ID = f"{OID}.3.2"  # C.1.8.1
HOSPITAL_RECORD = f"{OID}.3.9"  # D.1.1.3
AUTHORISATION = f"{OID}.3.4"  # G.k.3.1
OBSERVATION = f"{OID}.1.19"  # the ICH observation codes (age, reaction, outcome, …)
ORGANIZER = f"{OID}.1.20"
CHARACTERISTIC = f"{OID}.1.23"
REPORT_RELATION = f"{OID}.1.22"
AUTHOR_ROLE = f"{OID}.1.21"  # 1 sender, 3 source reporter
FIRST_SENDER = f"{OID}.1.3"  # C.1.8.2
REPORT_TYPE = f"{OID}.1.2"  # C.1.3
QUALIFICATION = f"{OID}.1.6"  # C.2.r.4
SENDER_TYPE = f"{OID}.1.7"  # C.3.1
OUTCOME = f"{OID}.1.11"  # E.i.7
DRUG_ROLE = f"{OID}.1.13"  # G.k.1
ACTION_TAKEN = f"{OID}.1.15"  # G.k.8
RECHALLENGE = f"{OID}.1.16"  # G.k.9.i.4
MEDDRA = "2.16.840.1.113883.6.163"
COUNTRY = "1.0.3166.1.2.2"
SEX = "1.0.5218"
HL7_INTERACTION = "2.16.840.1.113883.1.6"

SERIOUSNESS = (  # E.i.3.2a-f: (model field, observation code, display name)
    ("death", "34", "resultsInDeath"),
    ("life_threatening", "21", "isLifeThreatening"),
    ("hospitalisation", "33", "requiresInpatientHospitalization"),
    ("disability", "35", "resultsInPersistentOrSignificantDisability"),
    ("congenital", "12", "congenitalAnomalyBirthDefect"),
    ("other_important", "26", "otherMedicallyImportantCondition"),
)
NULLIFICATION_CODES = f"{OID}.1.5"  # C.1.11.1
NULLIFICATION, AMENDMENT = "nullification", "amendment"
REPORT_CODES = {NULLIFICATION: "1", AMENDMENT: "2"}  # C.1.11.1: 1 nullification, 2 amendment
FIRST_SENDER_OTHER = "2"  # C.1.8.2: a company, not a regulator
SENDER_PHARMACEUTICAL_COMPANY = "1"  # C.3.1
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CJK = re.compile("[\u3400-\u9fff]")


@dataclass
class Export:
    """A released batch: the XML that validated, its batch id (N.1.2) and each case's message id (N.2.r.1)."""

    xml: bytes
    message_id: str
    report_ids: dict[str, str] = field(default_factory=dict)  # case number → N.2.r.1
    retransmission: bool = False  # the stored file of an earlier export, unchanged (services.issue_icsr_batch)


class ExportRefused(ValidationError):
    """The batch failed the business rules or the schema; `problems` says what to fill in, case by case."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__({"cases": [str(p) for p in problems]})


# --- public -------------------------------------------------------------------------------------------------


def batch_message_id(now: dt.datetime, number: int | None = None) -> str:
    """N.1.2, "a unique tracking number assigned by the sender to each outbound batch file" (ICH E2B(R3) IG): the
    services give it the next number of a sequence (IcsrBatch keeps them unique); a batch only built here (a
    check, the preview of release) gets a random suffix."""
    suffix = f"{number:06d}" if number is not None else secrets.token_hex(3).upper()
    return f"PHARMACRM-{timezone.localtime(now):%Y%m%d%H%M%S}-{suffix}"


def report_id(case) -> str:
    """N.2.r.1, the message identifier: "the value is the same as C.1.1" (ICH E2B(R3) IG business rule) — the same
    for every ICSR of the case; which version a message carries is its date of creation, C.1.2, and which
    transmission, its batch number, N.1.2."""
    return rules.safety_report_id(case, conf.sender_org_code())


# the moment a content digest is built at: the digest is of what the file says about the cases, not of when
_DIGEST_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def content_digest(cases, *, report: str = "", reason: str = "", purpose: str = rules.REGULATORY) -> str:
    """What the batch says about `cases`, without its batch number and times: equal digests, the same file but for
    those (an unchanged case exported again is a retransmission, not a new version)."""
    xml = build(cases, message_id="-", now=_DIGEST_TIME, report=report, reason=reason, purpose=purpose)
    return hashlib.sha256(xml).hexdigest()


def build(cases, *, message_id: str | None = None, now: dt.datetime | None = None, report: str = "",
          reason: str = "", purpose: str = rules.REGULATORY) -> bytes:  # fmt: skip
    """The ICSR batch for `cases` (SafetyCase objects or a queryset), UTF-8. Writes nothing to the database;
    loads drugs, reactions, versions and files of all cases in one query each. `report`: "nullification" or
    "amendment" (C.1.11.1) for every ICSR of the batch, with its `reason` (C.1.11.2).

    `purpose` "partner" (a licensing partner): personal information leaves the company, so PIPL's minimisation
    (个人信息保护法 art. 6, 28: health data is sensitive) applies — the partner is the receiver (N.1.4, N.2.r.3), never
    the NMPA, and what identifies the patient or the reporter is withheld the way the ICH E2B(R3) IG says
    ("known to the sender but cannot be transmitted due to data privacy requirements … nullFlavor = MSK"): the
    patient by initials only (D.1), the record number (D.1.1.3), birth date (D.2.1, the age at onset sent
    instead), the reporter's name (C.2.r.1.2) and contact (C.2.r.2.7) masked. A regulatory ICSR carries them all."""
    now = now or timezone.now()
    cases = _load(cases)
    root = etree.Element(f"{{{HL7}}}MCCI_IN200100UV01", nsmap=NSMAP, ITSVersion="XML_1.0")
    root.set(f"{{{XSI}}}schemaLocation", f"{HL7} MCCI_IN200100UV01.xsd")
    _el(root, "id", extension=message_id or batch_message_id(now), root=BATCH_ID)
    _el(root, "creationTime", value=_ts(now))
    _el(root, "responseModeCode", code="D")
    _el(root, "interactionId", extension="MCCI_IN200100UV01", root=HL7_INTERACTION)
    _el(root, "name", code="1", displayName="ichicsr", codeSystem=f"{OID}.1.1")
    partner = purpose == rules.PARTNER
    receiver_id = conf.partner_receiver_id() if partner else conf.receiver_id()
    sender_id, org_code = conf.sender_id(), conf.sender_org_code()
    for case in cases:
        _message(root, case, now, sender_id, receiver_id, org_code, report, reason, partner=partner)
    _device(root, "receiver", "RCV", receiver_id, BATCH_RECEIVER)
    _device(root, "sender", "SND", sender_id, BATCH_SENDER)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def release(cases, *, purpose: str = rules.REGULATORY, message_id: str | None = None,
            now: dt.datetime | None = None, report: str = "", reason: str = "") -> Export:  # fmt: skip
    """Build, check and validate; the batch only when every case passes, else ExportRefused listing every
    problem of every case (a schema error there is a bug of this module, still never shipped). `message_id` and
    `now`: the batch number and date of creation the services allocated (services.issue_icsr_batch)."""
    cases = _load(cases)
    if not cases:
        raise ExportRefused([Problem("", "N.2.r", "", _("No case to export."))])
    # a nullification voids what was sent (often a case found invalid): it names the case by its ids and needs only
    # the schema; an amendment is a corrected report and passes every rule
    problems = [] if report == NULLIFICATION else [p for case in cases for p in rules.check(case, purpose)]
    if problems:
        raise ExportRefused(problems)
    now = now or timezone.now()
    message_id = message_id or batch_message_id(now)
    xml = build(cases, message_id=message_id, now=now, report=report, reason=reason, purpose=purpose)
    if len(xml) > schema.max_bytes():  # the copies of the articles (C.4.r.2) make the file
        raise ExportRefused([Problem("", "C.4.r.2", "literature", _(
            "The batch would be %(size)s MB with the copies of the articles, more than the %(max)s MB an ICSR file "
            "may have: export the cases one by one."
        ) % {"size": len(xml) // (1024 * 1024), "max": schema.max_mb()})])
    errors = schema.validate(xml, schema.BATCH)
    if errors:
        raise ExportRefused(
            [
                Problem("", "schema", "", _("The ICSR does not validate: %(error)s") % {"error": e})
                for e in errors
            ]
        )
    return Export(xml=xml, message_id=message_id, report_ids={c.number: report_id(c) for c in cases})


# --- the message ---------------------------------------------------------------------------------------------


def _load(cases) -> list:
    if isinstance(cases, QuerySet):
        cases = cases.prefetch_related(*PREFETCH)
    cases = list(cases)
    prefetch_related_objects(cases, *PREFETCH)
    return cases


def _message(root, case, now: dt.datetime, sender_id: str, receiver_id: str, org_code: str, report: str = "",
             reason: str = "", *, partner: bool = False) -> None:  # fmt: skip
    msg = _el(root, "PORR_IN049016UV")
    _el(msg, "id", extension=report_id(case), root=MESSAGE_ID)  # N.2.r.1 = C.1.1
    _el(msg, "creationTime", value=_ts(now))
    _el(msg, "interactionId", extension="PORR_IN049016UV", root=HL7_INTERACTION)
    _el(msg, "processingCode", code="P")
    _el(msg, "processingModeCode", code="I")
    _el(msg, "acceptAckCode", code="AL")
    _device(msg, "receiver", "RCV", receiver_id, MESSAGE_RECEIVER)
    _device(msg, "sender", "SND", sender_id, MESSAGE_SENDER)
    act = _el(msg, "controlActProcess", classCode="CACT", moodCode="EVN")
    _el(act, "code", code="PORR_TE049016UV", codeSystem="2.16.840.1.113883.1.18")
    _el(act, "effectiveTime", value=_ts(now))  # C.1.2
    event = _el(
        _el(act, "subject", typeCode="SUBJ"), "investigationEvent", classCode="INVSTG", moodCode="EVN"
    )
    case_id = rules.safety_report_id(case, org_code)
    _el(event, "id", extension=case_id, root=MESSAGE_ID)  # C.1.1
    _el(event, "id", extension=case.worldwide_id or case_id, root=WORLDWIDE_ID)  # C.1.8.1
    _el(event, "code", code="PAT_ADV_EVNT", codeSystem="2.16.840.1.113883.5.4")
    # a partner's file: the identities the structured elements withhold are withheld from the free text too
    clean = partner_text(case) if partner else str
    if case.narrative:
        _el(event, "text", _text(clean(case.narrative)), mediaType="text/plain")  # H.1
    _el(event, "statusCode", code="active")
    _el(_el(event, "effectiveTime"), "low", value=_day(case.received_at))  # C.1.4
    _el(event, "availabilityTime", value=_day(case.latest_received_at))  # C.1.5
    held, copies = documents(case)
    for n, case_file in enumerate(held, 1):  # C.1.6.1.r.1, one per document (in the order they were added)
        # required when C.1.6.1 says documents are held (ICH; FDA rejects R0009): their names, not their content
        document = _el(_el(event, "reference", typeCode="REFR"), "document", classCode="DOC", moodCode="EVN")
        _el(document, "code", code="1", codeSystem=f"{OID}.1.27", codeSystemVersion="1.0",
            displayName="documentsHeldBySender")  # fmt: skip
        # (a file name: 200 characters at most, of 2000); the uploader's name of a record may carry the patient's
        # (王小明病历.pdf): a partner reads which document it is, not whose
        title = f"document-{n}{PurePath(case_file.name).suffix[:10]}" if partner else case_file.name
        _el(document, "title", _text(title))
    for reference in (case.literature or "").splitlines():  # C.4.r.1, one per reference
        document = _el(_el(event, "reference", typeCode="REFR"), "document", classCode="DOC", moodCode="EVN")
        _el(document, "code", code="2", codeSystem=f"{OID}.1.27", codeSystemVersion="1.0",
            displayName="literatureReference")  # fmt: skip
        if reference in copies:  # C.4.r.2, the copy of the article
            _included_document(document, copies[reference])
        _el(document, "bibliographicDesignationText", _text(reference))

    assessment = _el(_el(event, "component", typeCode="COMP"), "adverseEventAssessment", classCode="INVSTG",
                     moodCode="EVN")  # fmt: skip
    role = _el(_el(assessment, "subject1", typeCode="SBJ"), "primaryRole", classCode="INVSBJ")
    reactions = list(case.reactions.all())
    drugs = list(case.drugs.all())
    reaction_ids = [_uid(case, "reaction", r) for r in reactions]
    drug_ids = [_uid(case, "drug", d) for d in drugs]
    _patient(role, case, partner=partner, clean=clean)
    for reaction, rid in zip(reactions, reaction_ids, strict=True):
        _reaction(role, case, reaction, rid, clean=clean)
    if drugs:
        organizer = _organizer(role, "4", "drugInformation")
        version = rules.meddra_version(case)
        for drug, did in zip(drugs, drug_ids, strict=True):
            _drug(organizer, case, drug, did, reaction_ids, version, clean=clean)
    for drug, did in zip(drugs, drug_ids, strict=True):  # G.k.1
        causality = _causality(assessment, "20", "interventionCharacterization")
        _el(causality, "value", {XSI_TYPE: "CE"}, code=drug.role, codeSystem=DRUG_ROLE)
        _product_reference(causality, did)
    for drug, did in zip(drugs, drug_ids, strict=True):  # G.k.9.i.2.r
        if drug.role not in rules.SUSPECT_ROLES:
            continue
        for source, result in (("reporter", case.causality_reporter), ("company", case.causality_company)):
            if not result:
                continue
            for rid in reaction_ids:
                causality = _causality(assessment, "39", "causality")
                _el(causality, "value", rules.CAUSALITY_TERMS[result], {XSI_TYPE: "ST"})
                _el(_el(causality, "methodCode"), "originalText", rules.CAUSALITY_METHOD)
                author = _el(_el(causality, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED")
                _el(_el(author, "code"), "originalText", source)
                _el(_el(causality, "subject1", typeCode="SUBJ"), "adverseEffectReference", classCode="OBS",
                    moodCode="EVN").append(_id(rid))  # fmt: skip
                _product_reference(causality, did)
    for text, author_code, display in ((case.reporter_comment, "3", "sourceReporter"),
                                       (case.sender_comment, "1", "sender")):  # fmt: skip
        if text:  # H.2, H.4
            comment = _el(_el(assessment, "component1", typeCode="COMP"), "observationEvent", classCode="OBS",
                          moodCode="EVN")  # fmt: skip
            _el(comment, "code", code="10", codeSystem=OBSERVATION, displayName="comment")
            _el(comment, "value", _text(clean(text)), {XSI_TYPE: "ED"})
            _author_code(comment, author_code, display)

    _event_observation(event, "1", "additionalDocumentsAvailable", bool(held))  # C.1.6.1
    serious = case.serious or any(r.serious for r in reactions)
    _event_observation(event, "23", "localCriteriaForExpedited", serious or _expedited(case))  # C.1.7
    first = _el(_el(event, "outboundRelationship", typeCode="SPRT"), "relatedInvestigation", classCode="INVSTG",
                moodCode="EVN")  # fmt: skip
    _el(first, "code", code="1", codeSystem=REPORT_RELATION, displayName="initialReport")
    _el(_author(first), "code", code=FIRST_SENDER_OTHER, codeSystem=FIRST_SENDER)  # C.1.8.2
    _reporter(event, case, partner=partner)
    sender = _el(
        _el(event, "subjectOf1", typeCode="SUBJ"), "controlActEvent", classCode="CACT", moodCode="EVN"
    )
    entity = _el(_el(sender, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED")
    _el(entity, "code", code=SENDER_PHARMACEUTICAL_COMPANY, codeSystem=SENDER_TYPE)  # C.3.1
    _organisation(entity, conf.sender_organisation())  # C.3.2
    characteristic = _characteristic(event, "1", "ICH ReportType")
    _el(characteristic, "value", {XSI_TYPE: "CE"}, code=case.report_type, codeSystem=REPORT_TYPE)  # C.1.3
    _el(_characteristic(event, "2", "otherCaseIds"), "value", {XSI_TYPE: "BL"}, nullFlavor="NI")  # C.1.9.1
    if report:  # C.1.11.1 nullification or amendment, C.1.11.2 its reason
        _el(_characteristic(event, "3", "nullificationAmendmentCode"), "value", {XSI_TYPE: "CE"},
            code=REPORT_CODES[report], codeSystem=NULLIFICATION_CODES)  # fmt: skip
        _el(_el(_characteristic(event, "4", "nullificationAmendmentReason"), "value", {XSI_TYPE: "CE"}),
            "originalText", _text(clean(reason)))  # fmt: skip


def documents(case) -> tuple[list, dict]:
    """(the documents the sender holds, C.1.6.1.r; {literature reference: the copy of its article, C.4.r.2}). A
    copy whose reference is no longer on the case is a document held like the others."""
    references = set((case.literature or "").splitlines())
    copies = {f.literature: f for f in case.files.all() if f.literature and f.literature in references}
    held = [f for f in case.files.all() if f.literature not in copies or copies[f.literature] is not f]
    return held, copies


def _included_document(document, case_file) -> None:
    """C.4.r.2 (ED): the file itself, base64 (representation B64) under its media type, its name in the reference
    element as FDA's instances place it. Not compressed: ICH makes compression optional, and FDA rejects it
    (R0010)."""
    try:
        with case_file.file.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:  # rules.check names it; a nullification goes without it
        return
    text = _el(document, "text", mediaType=case_file.content_type, representation="B64")
    etree.SubElement(text, f"{{{HL7}}}reference", value=_text(case_file.name)).tail = (
        base64.encodebytes(data).decode("ascii")  # MIME lines of 76 characters, like the examples
    )


def _expedited(case) -> bool:
    """C.1.7: whether an active reporting rule puts the case on an expedited timeline — every rule but the ones
    for "any other case" and non-serious cases (China's GVP: a new non-serious reaction is a 30-day report, not
    expedited; an administrator's rule for new reactions would make it one)."""
    from ..choices import ClockKind, RuleCondition
    from ..services import reportable, rules_for

    routine = (RuleCondition.OTHER, RuleCondition.OTHER_DOMESTIC, RuleCondition.NON_SERIOUS)
    return reportable(case) and any(
        rule.clock_kind == ClockKind.REPORT and rule.condition not in routine for rule in rules_for(case)
    )


# initials as typed: dotted ("J.S.", "J. A. S.") or up to three capitals ("WXM") — not "LI MING" in capitals
_INITIALS = re.compile(r"(?:[A-Z]\.\s?){1,10}|[A-Z]{1,3}")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def patient_initials(name: str) -> str:
    """D.1 for a partner: the initials of the patient's name, as case reports carry them — of a name in Chinese
    characters, its pinyin initials (王小明 → "WXM", the 姓名缩写 of a Chinese report form); of a name in Latin letters,
    its words' ("John A. Smith" → "JAS", "LI MING" → "LM"; initials stay as typed). A name in another script has
    none: "", and D.1 is masked (MSK)."""
    name = (name or "").strip()
    if not name:
        return ""
    if _CJK.search(name):
        from pharmacrm.customers.pinyin import Style, lazy_pinyin

        han = "".join(_CJK.findall(re.sub(r"[（(【\[].*?[）)】\]]", "", name)))  # not a note in brackets after it
        return "".join(lazy_pinyin(han, style=Style.FIRST_LETTER, errors="ignore")).upper()[:10]
    if _INITIALS.fullmatch(name):
        return name
    return "".join(word[0].upper() for word in _LATIN_WORD.findall(name))[:10]


# what stands for a withheld identity in a partner's free text (the product's mask, as masked displays show it)
WITHHELD = "****"
_SEPARATOR = r"[\s\-－—.()（）]?"  # between the digits of a phone number as people write it: 138-0013-8000
_NOT_DIGIT_BEFORE, _NOT_DIGIT_AFTER = r"(?<![0-9０-９])", r"(?![0-9０-９])"
# any mainland mobile number (+86 or not) and any resident ID card number (checked: 18 characters whose check character
# fits), whosever they are — a relative's number in the narrative is as personal as the patient's
_MOBILE = re.compile(_NOT_DIGIT_BEFORE + r"(?:(?:\+|00)?86" + _SEPARATOR + r")?1[3-9]\d(?:" + _SEPARATOR + r"\d){8}"
                     + _NOT_DIGIT_AFTER)  # fmt: skip
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_EMAIL = re.compile(r"[\w.!#$%&*+/=?^~-]+@[\w-]+(?:\.[\w-]+)+")


def _digits_pattern(value: str) -> re.Pattern | None:
    """A phone number the case holds, found however it is written in a text (spaces, dashes, +86)."""
    from pharmacrm.customers.normalise import phone

    line = phone(value)  # +85223456789 of +852 2345 6789-123 or 00852 2345 6789 转 123
    digits = line[1:] if line.startswith("+") else re.sub(r"\D", "", value.partition("转")[0])
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return None
    body = _SEPARATOR.join(re.escape(d) for d in digits)
    # a number from elsewhere (+852 9123 4567) is found with its + or 00, not leaving it behind
    return re.compile(_NOT_DIGIT_BEFORE + r"(?:(?:\+|00)?86" + _SEPARATOR + r"|[+＋]|00)?" + body + _NOT_DIGIT_AFTER)


# a one-character name (a surname alone: 王) is a common character too (王 in 王府井, 张 in 主张): it is found only where
# the text refers to a person by it — before a word that makes it one (王某, 王XX, 王先生, 王女士, 王医生, 王姓患者) or
# after one (患者王, 病人：王, 老王, 小王) — and not wherever the character occurs (docs/safety.md: its limit)
_ONE_CHARACTER_AFTER = ("某", "先生", "女士", "小姐", "太太", "夫人", "老师", "老師", "医生", "醫生", "医师", "醫師", "大夫",
                        "护士", "護士", "药师", "藥師", "主任", "阿姨", "大爷", "大爺", "奶奶", "爷爷", "爺爺", "姓", "氏")  # fmt: skip
# the placeholder of the rest of a name (王XX, 王**) — not an X-ray (一张X线片)
_ONE_CHARACTER_PLACEHOLDER = r"[XxＸｘ*＊]+(?![线線光射])"
_ONE_CHARACTER_BEFORE = ("患者", "病人", "病患", "患儿", "患兒", "报告人", "報告人", "报告者", "報告者", "姓", "老", "小")
_ONE_CHARACTER_GAP = ("", " ", ":", "：")  # 患者王 / 患者 王 / 患者：王


def _one_character_pattern(name: str) -> re.Pattern:
    before = "|".join(f"(?<={re.escape(word + gap)})" for word in _ONE_CHARACTER_BEFORE for gap in _ONE_CHARACTER_GAP)
    after = "|".join(re.escape(word) for word in _ONE_CHARACTER_AFTER)
    return re.compile(f"(?:{before}){re.escape(name)}|{re.escape(name)}(?={after}|{_ONE_CHARACTER_PLACEHOLDER})")


def _name_pattern(name: str) -> re.Pattern | None:
    """A name the case holds, found in a text: a name in Chinese characters as written (one character only where the
    text refers to a person by it: 王某, 王先生, 患者王 — not every 王), a name in Latin letters as whole words in any
    case."""
    name = re.sub(r"\s+", " ", (name or "").strip())
    if _CJK.search(name):
        return re.compile(re.escape(name)) if len(name) >= 2 else _one_character_pattern(name)
    if len(name.replace(" ", "")) < 3 or _INITIALS.fullmatch(name):
        return None  # initials already (J.S., WXM): what a partner gets anyway
    return re.compile(r"(?<![A-Za-z])" + re.escape(name).replace(r"\ ", r"\s+") + r"(?![A-Za-z])", re.IGNORECASE)


def partner_text(case):
    """For a partner's ICSR: a function that withholds, in a free text (narrative, comments, history, a reaction or an
    indication as reported), the identities the case knows and the structured elements withhold (PIPL
    minimisation): the patient's name becomes their initials (as D.1 has them), the reporter's name, the phone number
    or e-mail address given as contact and the hospital record number become WITHHELD; so does any phone number (a
    mainland mobile or landline, a number from Hong Kong, Macau, Taiwan or abroad), resident ID card number or e-mail
    address written there. The NMPA's file keeps the text as written."""
    from pharmacrm.customers.normalise import phone_spans, valid_id_card

    replacements: list[tuple[re.Pattern, str, int]] = []  # (where, what stands for it, the length of what it finds)
    patient = _name_pattern(case.patient_name)
    if patient is not None:
        replacements.append((patient, patient_initials(case.patient_name) or WITHHELD, len(case.patient_name.strip())))
    reporter = _name_pattern(case.reporter_name)
    if reporter is not None:
        replacements.append((reporter, WITHHELD, len(case.reporter_name.strip())))
    contact = (case.reporter_contact or "").strip()
    if "@" in contact:
        replacements.append((re.compile(re.escape(contact), re.IGNORECASE), WITHHELD, len(contact)))
    elif contact and (phone := _digits_pattern(contact)) is not None:
        replacements.append((phone, WITHHELD, len(contact)))
    record = (case.patient_record_number or "").strip()
    if len(record) >= 4:
        replacements.append((re.compile(r"(?<![0-9A-Za-z])" + re.escape(record) + r"(?![0-9A-Za-z])", re.IGNORECASE),
                             WITHHELD, len(record)))  # fmt: skip
    # the longest first: a name inside an e-mail address goes with the address, a reporter 王伟 before a patient 王
    replacements.sort(key=lambda item: -item[2])

    def clean(text: str) -> str:
        if not text:
            return text
        text = _EMAIL.sub(WITHHELD, text)
        for pattern, replacement, _length in replacements:
            text = pattern.sub(replacement, text)
        text = _ID_CARD.sub(lambda m: WITHHELD if valid_id_card(m.group(0).upper()) else m.group(0), text)
        text = _MOBILE.sub(WITHHELD, text)
        # a landline, a number from Hong Kong, Macau, Taiwan or abroad, as the masks of the product find them
        for start, end, _masked in reversed(phone_spans(text)):
            text = text[:start] + WITHHELD + text[end:]
        return text

    return clean


def _age_at_onset(case) -> str:
    """D.2.2a in years, from the birth date a partner's ICSR withholds: at the first reaction's onset, else day 0."""
    onsets = [r.onset_date for r in case.reactions.all() if r.onset_date]
    day = min(onsets) if onsets else timezone.localtime(case.received_at).date()
    born = case.patient_birth_date
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    return str(years) if years >= 0 else ""


def _patient(role, case, *, partner: bool = False, clean=str) -> None:
    person = _el(role, "player1", classCode="PSN", determinerCode="INSTANCE")
    name = patient_initials(case.patient_name) if partner else case.patient_name
    if name:
        _el(person, "name", _text(name))  # D.1
    elif case.patient_name:  # known, not sent: PIPL minimisation (ICH E2B(R3) IG, D.1: nullFlavor MSK)
        _el(person, "name", nullFlavor="MSK")
    else:
        _el(person, "name", nullFlavor="UNK")
    if case.patient_sex in ("1", "2"):
        _el(person, "administrativeGenderCode", code=case.patient_sex, codeSystem=SEX)  # D.5
    if case.patient_birth_date:  # D.2.1
        if partner:
            _el(person, "birthTime", nullFlavor="MSK")
        else:
            _el(person, "birthTime", value=_date(case.patient_birth_date))
    if case.patient_record_number:  # D.1.1.3
        ident = _el(person, "asIdentifiedEntity", classCode="IDENT")
        if partner:
            _el(ident, "id", nullFlavor="MSK", root=HOSPITAL_RECORD)
        else:
            _el(ident, "id", extension=case.patient_record_number, root=HOSPITAL_RECORD)
        _el(ident, "code", code="3", codeSystem=f"{OID}.1.4", displayName="Hospital Record")
    age, age_unit = case.patient_age, case.patient_age_unit
    if partner and not age and case.patient_birth_date:
        age, age_unit = _age_at_onset(case), "a"
    for value, unit, code, display in (
        (age, age_unit, "3", "age"),  # D.2.2a/b
        (case.patient_weight_kg, "kg", "7", "bodyWeight"),  # D.3
        (case.patient_height_cm, "cm", "17", "height"),  # D.4
    ):
        if value:
            observation = _subject_observation(role, code, display)
            _el(observation, "value", {XSI_TYPE: "PQ"}, value=value.strip(), unit=unit or "a")
    history = case.patient_history
    pregnancy = (case.patient_pregnancy or "").strip()
    if pregnancy:  # no E2B element of its own for the text: with the history (D.7.2)
        label = capfirst(case._meta.get_field("patient_pregnancy").verbose_name)
        history = "\n".join(t for t in (history, f"{label}: {pregnancy}") if t)
    if history:  # D.7.2
        organizer = _organizer(role, "1", "relevantMedicalHistoryAndConcurrentConditions")
        observation = _el(_el(organizer, "component", typeCode="COMP"), "observation", classCode="OBS",
                          moodCode="EVN")  # fmt: skip
        _el(
            observation,
            "code",
            code="18",
            codeSystem=OBSERVATION,
            displayName="historyAndConcurrentConditionText",
        )
        _el(observation, "value", _text(clean(history)), {XSI_TYPE: "ED"})


def _reaction(role, case, reaction, rid: str, *, clean=str) -> None:
    observation = _subject_observation(role, "29", "reaction", rid)
    if reaction.onset_date or reaction.end_date:  # E.i.4, E.i.5
        period = _el(observation, "effectiveTime", {XSI_TYPE: "IVL_TS"})
        # at the precision known: a reaction "in March 2026" is 202603 (YYYYMM), not 20260301
        if reaction.onset_date:
            _el(period, "low", value=partial_dates.e2b(reaction.onset_date, reaction.onset_precision))
        if reaction.end_date:
            _el(period, "high", value=partial_dates.e2b(reaction.end_date, reaction.end_precision))
    value = _el(observation, "value", {XSI_TYPE: "CE"}, codeSystem=MEDDRA)  # E.i.2.1a/b
    if reaction.meddra_llt:
        value.set("code", reaction.meddra_llt)
        if reaction.meddra_version:
            value.set("codeSystemVersion", reaction.meddra_version)
    if reaction.verbatim:  # E.i.1.1a/b
        lang = {"language": reaction.language} if reaction.language else {}
        _el(value, "originalText", _text(clean(reaction.verbatim)), **lang)
    if case.country:  # E.i.9
        place = _el(_el(_el(observation, "location", typeCode="LOC"), "locatedEntity", classCode="LOCE"),
                    "locatedPlace", classCode="COUNTRY", determinerCode="INSTANCE")  # fmt: skip
        _el(place, "code", code=case.country, codeSystem=COUNTRY)
    for name, code, display in SERIOUSNESS:  # E.i.3.2a-f: true, or "no information"
        criterion = _related_observation(observation, code, display)
        if getattr(reaction, name):
            _el(criterion, "value", {XSI_TYPE: "BL"}, value="true")
        else:
            _el(criterion, "value", {XSI_TYPE: "BL"}, nullFlavor="NI")
    if reaction.outcome:  # E.i.7
        _el(_related_observation(observation, "27", "outcome"), "value", {XSI_TYPE: "CE"}, code=reaction.outcome,
            codeSystem=OUTCOME)  # fmt: skip


def _drug(organizer, case, drug, did: str, reaction_ids: list[str], meddra_version: str, *, clean=str) -> None:
    use = _el(_el(organizer, "component", typeCode="COMP"), "substanceAdministration", classCode="SBADM",
              moodCode="EVN")  # fmt: skip
    use.append(_id(did))
    kind = _el(_el(_el(use, "consumable", typeCode="CSM"), "instanceOfKind", classCode="INST"), "kindOfProduct",
               classCode="MMAT", determinerCode="KIND")  # fmt: skip
    _el(kind, "name", _text(rules.product_name(drug)))  # G.k.2.2
    if drug.approval_number or drug.manufacturer:  # G.k.3
        approval = _el(_el(_el(kind, "asManufacturedProduct", classCode="MANU"), "subjectOf", typeCode="SBJ"),
                       "approval", classCode="CNTRCT", moodCode="EVN")  # fmt: skip
        if drug.approval_number:
            _el(approval, "id", extension=drug.approval_number, root=AUTHORISATION)  # G.k.3.1
        if drug.manufacturer:  # G.k.3.3
            holder = _el(_el(approval, "holder", typeCode="HLD"), "role", classCode="HLD")
            _el(_el(holder, "playingOrganization", classCode="ORG", determinerCode="INSTANCE"), "name",
                _text(drug.manufacturer))  # fmt: skip
        if drug.approval_number:  # G.k.3.2: a 批准文号 is China's; otherwise the case's country
            country = "CN" if _CJK.search(drug.approval_number) else case.country
            territory = _el(_el(_el(approval, "author", typeCode="AUT"), "territorialAuthority", classCode="TERR"),
                            "territory", classCode="NAT", determinerCode="INSTANCE")  # fmt: skip
            _el(territory, "code", code=country, codeSystem=COUNTRY)
    if drug.brand_name and drug.generic_name:  # G.k.2.3.r.1
        substance = _el(_el(kind, "ingredient", classCode="ACTI"), "ingredientSubstance", classCode="MMAT",
                        determinerCode="KIND")  # fmt: skip
        _el(substance, "name", _text(drug.generic_name))

    if any(
        (drug.frequency, drug.start_date, drug.stop_date, drug.route, drug.dose, drug.batch, drug.dosage_form)
    ):
        dosage = _el(_el(use, "outboundRelationship2", typeCode="COMP"), "substanceAdministration",
                     classCode="SBADM", moodCode="EVN")  # fmt: skip
        if drug.frequency:
            _el(dosage, "text", _text(drug.frequency))  # G.k.4.r.8
        if drug.start_date or drug.stop_date:  # G.k.4.r.4, G.k.4.r.5
            period = _el(dosage, "effectiveTime", {XSI_TYPE: "IVL_TS"})
            # at the precision known: a drug taken "since March 2026" is 202603 (YYYYMM), not 20260301
            if drug.start_date:
                _el(period, "low", value=partial_dates.e2b(drug.start_date, drug.start_precision))
            if drug.stop_date:
                _el(period, "high", value=partial_dates.e2b(drug.stop_date, drug.stop_precision))
        if drug.route:
            _el(_el(dosage, "routeCode"), "originalText", _text(drug.route))  # G.k.4.r.10.1
        if drug.dose:  # G.k.4.r.1a/b
            _el(dosage, "doseQuantity", value=drug.dose.strip(), unit=rules.ucum_unit(drug.dose_unit) or "1")
        if drug.batch or drug.dosage_form:
            instance = _el(_el(dosage, "consumable", typeCode="CSM"), "instanceOfKind", classCode="INST")
            if drug.batch:  # G.k.4.r.7
                _el(_el(instance, "productInstanceInstance", classCode="MMAT", determinerCode="INSTANCE"),
                    "lotNumberText", _text(drug.batch))  # fmt: skip
            if drug.dosage_form:  # G.k.4.r.9.1
                form = _el(
                    _el(instance, "kindOfProduct", classCode="MMAT", determinerCode="KIND"), "formCode"
                )
                _el(form, "originalText", _text(drug.dosage_form))
    if drug.rechallenge:  # G.k.9.i.4, for each reaction assessed
        for rid in reaction_ids:
            observation = _el(_el(use, "outboundRelationship2", typeCode="PERT"), "observation", classCode="OBS",
                              moodCode="EVN")  # fmt: skip
            _el(observation, "code", code="31", codeSystem=OBSERVATION, displayName="recurranceOfReaction")
            _el(observation, "value", {XSI_TYPE: "CE"}, code=rules.RECHALLENGE_CODES[drug.rechallenge],
                codeSystem=RECHALLENGE)  # fmt: skip
            _el(_el(observation, "outboundRelationship1", typeCode="REFR"), "actReference", classCode="OBS",
                moodCode="EVN").append(_id(rid))  # fmt: skip
    if drug.dechallenge:  # no E2B element: G.k.11, additional information on drug (free text)
        observation = _el(_el(use, "outboundRelationship2", typeCode="REFR"), "observation", classCode="OBS",
                          moodCode="EVN")  # fmt: skip
        _el(observation, "code", code="2", codeSystem=OBSERVATION, displayName="additionalInformation")
        text = _("Dechallenge: %(result)s") % {"result": drug.dechallenge_shown}
        _el(observation, "value", str(text), {XSI_TYPE: "ST"})
    if drug.indication or drug.indication_meddra:  # G.k.7.r.1, G.k.7.r.2a/b
        observation = _el(_el(use, "inboundRelationship", typeCode="RSON"), "observation", classCode="OBS",
                          moodCode="EVN")  # fmt: skip
        _el(observation, "code", code="19", codeSystem=OBSERVATION, displayName="indication")
        value = _el(observation, "value", {XSI_TYPE: "CE"}, codeSystem=MEDDRA)
        if drug.indication_meddra:
            value.set("code", drug.indication_meddra)
            if meddra_version:
                value.set("codeSystemVersion", meddra_version)
        if drug.indication:
            _el(value, "originalText", _text(clean(drug.indication)))
        performer = _el(_el(observation, "performer", typeCode="PRF"), "assignedEntity", classCode="ASSIGNED")
        _el(performer, "code", code="3", codeSystem=AUTHOR_ROLE, displayName="sourceReporter")
    if drug.action_taken:  # G.k.8
        act = _el(_el(use, "inboundRelationship", typeCode="CAUS"), "act", classCode="ACT", moodCode="EVN")
        _el(act, "code", code=drug.action_taken, codeSystem=ACTION_TAKEN)


def _reporter(event, case, *, partner: bool = False) -> None:
    """C.2.r: the case keeps one reporter, the primary source for regulatory purposes (C.2.r.5). For a partner
    the reporter's name and contact are masked (MSK, as the IG asks for data that privacy keeps back); their
    qualification, institution and country stay — what a partner needs to weigh the report."""
    if not any(
        (case.reporter_name, case.reporter_contact, case.reporter_institution, case.reporter_qualification)
    ):
        return
    relation = _el(event, "outboundRelationship", typeCode="SPRT")
    _el(relation, "priorityNumber", value="1")  # C.2.r.5
    investigation = _el(relation, "relatedInvestigation", classCode="INVSTG", moodCode="EVN")
    _el(investigation, "code", code="2", codeSystem=REPORT_RELATION, displayName="sourceReport")
    entity = _author(investigation)
    contact = case.reporter_contact.replace(" ", "")
    if contact:  # C.2.r.2.7 (or the e-mail address FDA adds)
        scheme = "mailto:" if "@" in contact else "tel:"
        if partner:  # a masked value keeps its telecom prefix (FDA's data-element table)
            _el(entity, "telecom", value=scheme, nullFlavor="MSK")
        else:
            _el(entity, "telecom", value=scheme + contact)
    person = _el(entity, "assignedPerson", classCode="PSN", determinerCode="INSTANCE")
    if case.reporter_name:  # C.2.r.1.2: one text, as reported
        if partner:
            _el(_el(person, "name"), "given", nullFlavor="MSK")
        else:
            _el(_el(person, "name"), "given", _text(case.reporter_name))
    qualified = _el(person, "asQualifiedEntity", classCode="QUAL")
    if case.reporter_qualification:  # C.2.r.4
        _el(qualified, "code", code=case.reporter_qualification, codeSystem=QUALIFICATION)
    else:
        _el(qualified, "code", nullFlavor="UNK")
    country = case.reporter_country or case.country
    if country:  # C.2.r.3
        location = _el(_el(person, "asLocatedEntity", classCode="LOCE"), "location", classCode="COUNTRY",
                       determinerCode="INSTANCE")  # fmt: skip
        _el(location, "code", code=country, codeSystem=COUNTRY)
    if case.reporter_institution:  # C.2.r.2.1
        _organisation(entity, case.reporter_institution)


# --- small builders -----------------------------------------------------------------------------------------


def _el(parent, tag: str, text: str | dict | None = None, attrib: dict | None = None, **attrs):
    """A child element in the HL7 namespace; `text` may be skipped in favour of an attribute dict."""
    if isinstance(text, dict):
        text, attrib = None, text
    element = etree.SubElement(parent, f"{{{HL7}}}{tag}", attrib or {}, **attrs)
    if text is not None:
        element.text = text
    return element


def _id(uid: str):
    element = etree.Element(f"{{{HL7}}}id")
    element.set("root", uid)
    return element


def _device(parent, tag: str, type_code: str, extension: str, root: str) -> None:
    device = _el(_el(parent, tag, typeCode=type_code), "device", classCode="DEV", determinerCode="INSTANCE")
    _el(device, "id", extension=extension, root=root)


def _organizer(role, code: str, display: str):
    organizer = _el(
        _el(role, "subjectOf2", typeCode="SBJ"), "organizer", classCode="CATEGORY", moodCode="EVN"
    )
    _el(organizer, "code", code=code, codeSystem=ORGANIZER, displayName=display)
    return organizer


def _subject_observation(role, code: str, display: str, uid: str | None = None):
    observation = _el(_el(role, "subjectOf2", typeCode="SBJ"), "observation", classCode="OBS", moodCode="EVN")
    if uid:
        observation.append(_id(uid))
    _el(observation, "code", code=code, codeSystem=OBSERVATION, displayName=display)
    return observation


def _related_observation(observation, code: str, display: str):
    related = _el(_el(observation, "outboundRelationship2", typeCode="PERT"), "observation", classCode="OBS",
                  moodCode="EVN")  # fmt: skip
    _el(related, "code", code=code, codeSystem=OBSERVATION, displayName=display)
    return related


def _causality(assessment, code: str, display: str):
    causality = _el(_el(assessment, "component", typeCode="COMP"), "causalityAssessment", classCode="OBS",
                    moodCode="EVN")  # fmt: skip
    _el(causality, "code", code=code, codeSystem=OBSERVATION, displayName=display)
    return causality


def _product_reference(causality, did: str) -> None:
    _el(_el(causality, "subject2", typeCode="SUBJ"), "productUseReference", classCode="SBADM",
        moodCode="EVN").append(_id(did))  # fmt: skip


def _author_code(parent, code: str, display: str) -> None:
    entity = _el(_el(parent, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED")
    _el(entity, "code", code=code, codeSystem=AUTHOR_ROLE, displayName=display)


def _author(investigation):
    event = _el(_el(investigation, "subjectOf2", typeCode="SUBJ"), "controlActEvent", classCode="CACT",
                moodCode="EVN")  # fmt: skip
    return _el(_el(event, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED")


def _organisation(entity, name: str) -> None:
    """An organisation under an assigned entity, the way E2B nests it (the outer level is the department)."""
    outer = _el(entity, "representedOrganization", classCode="ORG", determinerCode="INSTANCE")
    inner = _el(_el(outer, "assignedEntity", classCode="ASSIGNED"), "representedOrganization", classCode="ORG",
                determinerCode="INSTANCE")  # fmt: skip
    _el(inner, "name", _text(name))


def _event_observation(event, code: str, display: str, value: bool) -> None:
    observation = _el(
        _el(event, "component", typeCode="COMP"), "observationEvent", classCode="OBS", moodCode="EVN"
    )
    _el(observation, "code", code=code, codeSystem=OBSERVATION, displayName=display)
    _el(observation, "value", {XSI_TYPE: "BL"}, value="true" if value else "false")


def _characteristic(event, code: str, display: str):
    characteristic = _el(_el(event, "subjectOf2", typeCode="SUBJ"), "investigationCharacteristic", classCode="OBS",
                         moodCode="EVN")  # fmt: skip
    _el(characteristic, "code", code=code, codeSystem=CHARACTERISTIC, displayName=display)
    return characteristic


def _uid(case, kind: str, obj) -> str:
    """A stable UUID for a drug or reaction, so that the same case exports the same ids every time."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pharmacrm:{case.number}:{kind}:{obj.pk or obj.position}"))


def _text(value: str) -> str:
    return _NOT_XML.sub("", str(value))


def _ts(moment: dt.datetime) -> str:
    """HL7 TS with seconds and the UTC offset, in China time."""
    return timezone.localtime(moment).strftime("%Y%m%d%H%M%S%z")


def _day(moment: dt.datetime) -> str:
    return _date(timezone.localtime(moment).date() if timezone.is_aware(moment) else moment.date())


def _date(day: dt.date) -> str:
    return day.strftime("%Y%m%d")
