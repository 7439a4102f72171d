"""Showing personal data: masked, plain, or revealed with a reason — and every clear read audited."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db.models import Q

from pharmacrm.customers import normalise

from . import access, audit
from .models import AuditEntry

MASKERS = {
    "mobile": normalise.mask_phone,
    "landline": normalise.mask_phone,
    "email": normalise.mask_email,
    "birthday": lambda v: "****-" + v.strftime("%m-%d") if v else "",
    "home_address": normalise.mask_text,
    "id_number": lambda v: (v[:3] + "*" * 11 + v[-4:]) if v else "",
}


# a customer's free text (an institution's or a person's needs and notes): what someone typed there is shown with the
# phone numbers, e-mail addresses and ID card numbers in it masked (normalise.mask_contacts) to the roles that see
# personal data masked, as the structured fields are; a person's revealed with a reason, as their contact details
FREE_TEXT_FIELDS = ("needs", "notes")


def masks_free_text(user) -> bool:
    """Whether contact details typed into customers' free text are masked for this user (before any reveal)."""
    return access.personal_data_mode(user) != "plain"


# where a text was cut short and "…" added (a ticket's edited subject or description kept at 200 characters in its
# history and audit entry, editing._short): at the end of the text or before a space (the page's "old … → new")
_CUT_MARK = re.compile(r"…(?=\s|$)")


def _masked(value: str) -> str:
    """mask_contacts, and before each cut mark the cut rule (normalise.mask_contacts_cut): a number cut there mid-way
    (请回电 1391234…) is masked as well (请回电 139****…), which mask_contacts alone does not recognise."""
    parts = _CUT_MARK.split(value)
    if len(parts) == 1:
        return normalise.mask_contacts(value)
    cut = [normalise.mask_contacts_cut(p, len(p)) if p else p for p in parts[:-1]]
    return "…".join([*cut, normalise.mask_contacts(parts[-1])])


def free_text(value, masked: bool) -> str:
    """A free text as shown: with the contact details in it masked when `masked`, also a number cut short before a
    "…". What is stored is not changed."""
    if not isinstance(value, str):
        return value
    return _masked(value) if masked and value else value


def audit_text(value, masked: bool) -> str:
    """A text an audit entry keeps (a detail such as a reveal's reason, a record's name), as shown: `free_text`, and
    for a masked reader a value at exactly one of the lengths entries cut texts at before every cut was marked with
    "…" (audit.CUT_LENGTHS) has a number or an e-mail address cut at its end masked by the cut rule
    (normalise.mask_contacts_cut: …请回电 1391234 → …请回电 139****). What is stored is not changed: the trail is
    append-only."""
    shown = free_text(value, masked)
    if masked and isinstance(value, str) and len(value) in audit.CUT_LENGTHS and not value.endswith("…"):
        return normalise.mask_contacts_cut(shown, len(shown))
    return shown


def holds_contacts(value) -> bool:
    return isinstance(value, str) and bool(value) and normalise.mask_contacts(value) != value


CUSTOMER_OBJECTS = ("customers.institution", "customers.person")

# the other free text written about customers, masked alike for the same roles (pages, API, exports, audit trail):
# an interaction's subject and notes (家属电话 139…), a customer's key opinion leaders and influence notes
FREE_TEXT_OF = {
    "customers.institution": FREE_TEXT_FIELDS,
    "customers.person": FREE_TEXT_FIELDS,
    "engagement.interaction": ("subject", "notes"),
    "keyaccounts.marketinfluence": ("kol_names", "notes"),
    # what a customer wrote in to the service desk or an agent typed (请回电 139…): a ticket's subject and description;
    # its conversation is masked alike where it is shown (servicedesk.api.TEXT_FIELDS, views_conversation)
    "servicedesk.ticket": ("subject", "description", "resolution_summary", "impact_note"),
    # what a key-account team writes about its customer (联系人王主任 139…): a key account's and a trial offer's notes,
    # a proposal's reason and its decision, a service plan's goals, an item's service and standard and its progress
    # note (每月回访王主任 139…), a service meeting's title, attendees and minutes and its action items; an item and a
    # meeting are named by their titles in the audit trail
    "keyaccounts.keyaccount": ("notes",),
    "keyaccounts.trialoffer": ("notes",),
    "keyaccounts.proposal": ("reason", "decision_comment"),
    "keyaccounts.review": ("comment",),  # a reviewer's opinion comment on a proposal
    "keyaccounts.serviceplan": ("goals", "decision_comment"),
    "keyaccounts.planitem": ("title", "standard", "progress_note"),
    "keyaccounts.meeting": ("title", "attendees", "minutes"),
    "keyaccounts.meetingaction": ("title",),
    # a lifecycle stage task's note (what was done) and why it was skipped
    "engagement.stagetask": ("note", "reason"),
    # a loyalty referral's note, a cooperation project's acceptance remarks and checks, market intelligence
    "loyalty.referral": ("note",),
    # a points entry's reason (a manual correction: 客户王主任 139… 来电投诉补分; a rejection's reason), a redemption's
    # decision and its delivery note (快递至王主任 139…, 北京市…): the member page, the loyalty API, the audit trail
    "loyalty.pointsentry": ("reason",),
    "loyalty.redemption": ("decision_note", "delivery_note"),
    # a cooperation project's acceptance remarks and the standards it was accepted against (对接人王主任 139…)
    "cooperation.acceptance": ("remarks", "standards"),
    # a cooperation agreement's title, rights and obligations and payment terms, a project's and a task's title and a
    # project's goal (王主任 139… 学术会议项目): the title names the agreement, the project and the task in the audit
    # trail too (the agreement's generated PDF is a contract document: printed as typed)
    "cooperation.agreement": ("title", "terms", "payment_terms"),
    "cooperation.project": ("title", "goal"),
    "cooperation.task": ("title",),
    "cooperation.check": ("problems", "measures"),
    # why an agreement's term was amended (补充协议: 因项目延期，联系王主任 139…); its PDF is a contract, printed as typed
    "keyaccounts.agreementamendment": ("reason",),
    "cooperation.agreementamendment": ("reason",),
    "market.intelligence": ("title", "content", "source"),
    "market.presence": ("note",),
    # the competitor catalogue's notes on a company and a product (医药代表张经理 139…): the product page, the edit forms,
    # /api/v1/market/competitors/ and competitor-products/, the audit trail
    "market.competitor": ("notes",),
    "market.competitorproduct": ("notes",),
    # a licence's business scope as printed, typed in by a rep (…联系人李经理 139…): the customer's licences block,
    # /api/v1/licences/, the audit trail
    "licences.licence": ("scope_note",),
    # what a customer wrote in a satisfaction survey's comment (请致电 139…), or an agent noted from a revisit call:
    # the survey campaign's answers, its export and the survey API
    "servicedesk.survey": ("comment",),
    # a quality review's findings about how a ticket was handled (未核实来电人 139… 的身份), the agent's appeal and the
    # decision on it: the ticket's quality panel, the quality page and its export, the quality API, the audit trail
    "servicedesk.qualityreview": ("comment", "appeal", "appeal_answer"),
    # an improvement action opened from a poor survey answer starts with the customer's comment as its description
    # and its title and outcome are what its owner writes about the customer (回电李女士 139…)
    "servicedesk.improvementaction": ("title", "description", "outcome"),
    # a sales opportunity's title, competitor, next step and why it was lost, in the rep's words (联系药剂科李主任 139…,
    # 王主任 139… 引进项目): its title names it in the audit trail too
    "sales.opportunity": ("title", "competitor", "next_step", "lost_note"),
    # an annual communication plan's goal and its lines' notes (重点联系王主任 139…)
    "engagement.communicationplan": ("goal",),
    "engagement.communicationplanline": ("note",),
    # why an owner or a manager dismissed a churn warning (客户已转由李主任 139… 采购), kept in the audit trail
    "sales.churnsignal": ("reason",),
    # what pharmacovigilance and QA write about a safety or quality case (经与报告人 139… 核实), read by the overseeing
    # roles, the auditor among them: a submission's reason for the delay (the case page, its submissions/ in the API), a
    # flag's reason for dismissal (/api/v1/safety/flags/), and in the audit trail a CAPA action (which names it) and
    # its effectiveness check and a case's sender's comments and literature. The excerpt of a flag (the customer's own
    # words), a quality complaint's texts and the patient's data are pharmacovigilance's only
    "safety.submission": ("late_reason",),
    "safety.flag": ("excerpt", "reason"),
    "safety.capa": ("action", "effectiveness_check"),
    "safety.qualitycomplaint": ("defect", "investigation_outcome", "root_cause", "recall_reason"),
    "safety.safetycase": ("sender_comment", "literature"),
}

# records named in the audit trail by their free text (an interaction by its subject, a ticket by its number and
# subject): the name is masked as the text is
NAMED_BY_FREE_TEXT = ("engagement.interaction", "servicedesk.ticket", "keyaccounts.meetingaction", "market.intelligence",
                      "servicedesk.improvementaction", "sales.opportunity", "keyaccounts.planitem",
                      "keyaccounts.meeting", "cooperation.agreement", "cooperation.project",
                      "cooperation.task", "safety.capa")  # fmt: skip


def audit_names(names: dict[str, dict[str, str]], masked: bool) -> dict[str, dict[str, str]]:
    """The current names of the records a page of audit entries names ({"app.model": {pk: name}}: the tickets a read
    lists, the record a change points to), as the reader sees them: for a reader who sees personal data masked, a
    record named by its free text (NAMED_BY_FREE_TEXT: a ticket by its number and subject) with the contact details
    in its name masked, as the entries' own names are."""
    if not masked:
        return names
    return {label: {pk: free_text(name, True) for pk, name in found.items()} if label in NAMED_BY_FREE_TEXT else found
            for label, found in names.items()}  # fmt: skip


def masks_for(context: dict) -> bool:
    """Whether the reader of a serializer's answer (its context's request) sees free text masked: decided once per
    answer, in the context shared by the serializers nested in it."""
    if "_free_text_masked" not in context:
        request = context.get("request")
        context["_free_text_masked"] = request is None or masks_free_text(request.user)
    return context["_free_text_masked"]


def shown_fields(context: dict, data: dict, object_type: str) -> dict:
    """A serializer's answer with the free text of `object_type` (FREE_TEXT_OF) as its reader may see it."""
    masked = masks_for(context)
    for name in FREE_TEXT_OF[object_type]:
        if name in data:
            data[name] = free_text(data[name], masked)
    return data


_PART_OF_A_CONTACT = re.compile(r"[0-9０-９@＠]")  # a query that may be (part of) a number or an address


def search_as_shown(user, qs, fields: Iterable[str], query: str):
    """`qs` filtered to the rows with `query` in one of these free texts as `user` reads them. For a reader shown the
    contact details masked, a query that could be part of one (digits, an @) matches only the text as shown: a search
    for 1380013 no longer tells which of the texts showing 138****8000 holds 13800138000. Other searches match in the
    database, as before."""
    fields = tuple(fields)
    found = Q()
    for name in fields:
        found |= Q(**{f"{name}__icontains": query})
    qs = qs.filter(found)
    if (user is not None and not masks_free_text(user)) or not _PART_OF_A_CONTACT.search(query):
        return qs
    needle = query.casefold()
    shown = [row[0] for row in qs.prefetch_related(None).values_list("pk", *fields).iterator()
             if any(needle in free_text(v or "", True).casefold() for v in row[1:])]  # fmt: skip
    return qs.filter(pk__in=shown)


def restore_free_text(user, data: dict, stored, fields: Iterable[str]) -> dict:
    """`data` as a change by `user` to `stored` is saved: for a user shown these free texts masked (the edit form,
    a GET then PATCH), each mask still in them is put back as stored (normalise.restore_contacts), never saved in
    place of the real number or address; what they type is kept as typed."""
    if stored is None or not masks_free_text(user):
        return data
    return {**data, **{f: normalise.restore_contacts(data[f], getattr(stored, f) or "")
                       for f in fields if isinstance(data.get(f), str) and "*" in data[f]}}  # fmt: skip


# records an entry keeps whole as a change of its object: change key → their free text (a reviewer's opinion on a
# proposal, before and after: {"department", "opinion", "comment"}, keyaccounts.services.give_opinion; a communication
# plan's lines, a list of whole records before and after: {"channel", "minimum", "period", "note"}
FREE_TEXT_IN_CHANGES = {
    "keyaccounts.proposal": {"review": ("comment",)},
    "engagement.communicationplan": {"lines": ("note",)},
}


def _masked_record(record, fields):
    if isinstance(record, list | tuple):  # a list of records (a plan's lines)
        return [_masked_record(r, fields) for r in record]
    if not isinstance(record, dict):
        return record
    return {**record, **{f: free_text(record[f], True) for f in fields if f in record}}


def audit_changes(object_type: str, changes, masked: bool):
    """An audit entry's changes as the audit page and API show them: free text about a customer (FREE_TEXT_OF)
    before and after with the contact details in it masked when `masked` (the auditor; the administrator reads them
    as recorded). The structured personal fields are never in an entry (a keyed digest stands for them)."""
    if not masked or not isinstance(changes, dict):
        return changes
    shown = dict(changes)
    for name, fields in FREE_TEXT_IN_CHANGES.get(object_type, {}).items():
        pair = shown.get(name)
        if isinstance(pair, list | tuple):
            shown[name] = [_masked_record(r, fields) for r in pair]
    for name in FREE_TEXT_OF.get(object_type, ()):
        pair = shown.get(name)
        if isinstance(pair, list | tuple):
            shown[name] = [free_text(v, True) for v in pair]
        elif isinstance(pair, str):
            shown[name] = free_text(pair, True)
    return shown


_DIGEST = re.compile(r"[0-9a-f]{16,}|\*+#[0-9a-f]+")  # a hash or a keyed digest (******#1a2b3c4d), never a phone


def _masked_leaves(value):
    if isinstance(value, str):
        return value if _DIGEST.fullmatch(value) else audit_text(value, True)
    if isinstance(value, list | tuple):
        return [_masked_leaves(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked_leaves(v) for k, v in value.items()}
    return value


def audit_details(extra, masked: bool):
    """An audit entry's details (AuditEntry.extra) as the audit page and API show them: for a reader who sees
    personal data masked (the auditor), every phone number, e-mail address and ID card number written in them
    masked, whatever the entry — a deleted person's consent records keep their evidence there (家属电话 139…), and
    a detail added later is covered without a list to keep. The administrator reads them as recorded."""
    if not masked or not isinstance(extra, dict):
        return extra
    return {k: _masked_leaves(v) for k, v in extra.items()}


def _plain(field: str, value):
    if field in ("mobile", "landline") and value:
        return normalise.format_phone(value)
    if field == "birthday" and value:
        return value.isoformat()
    return value or ""


def contact_view(
    user, people: Iterable, *, reveal_reason: str = "", fields=None, purpose: str = "view", texts: tuple = ()
) -> dict[int, dict]:
    """{person id: {field: shown value, "_masked": bool}} for these people, as this user may see them.
    `texts`: free-text fields shown along (FREE_TEXT_FIELDS), under "_texts": {field: shown value}, with the
    contact details typed in them masked or clear as the fields are.

    Callers pass only people the user may see (scoped querysets). Clear values are audited: one
    entry per call, listing the people and fields read (a free text only when it held contact details)."""
    from pharmacrm.customers.models import Person

    fields = tuple(fields or Person.PERSONAL_FIELDS)
    people = list(people)
    mode = access.personal_data_mode(user)
    clear = mode == "plain" or (mode == "reveal" and bool(reveal_reason.strip()))
    out: dict[int, dict] = {}
    read_ids = []
    read_texts: set[str] = set()
    for p in people:
        row: dict = {"_masked": not clear}
        for f in fields:
            value = getattr(p, f)
            row[f] = _plain(f, value) if not row["_masked"] else MASKERS[f](value) if value else ""
        held = [t for t in texts if holds_contacts(getattr(p, t))] if not row["_masked"] else []
        if texts:
            row["_texts"] = {t: free_text(getattr(p, t), row["_masked"]) for t in texts}
        if not row["_masked"] and (any(getattr(p, f) for f in fields) or held):
            read_ids.append(p.pk)
            read_texts.update(held)
        out[p.pk] = row
    if read_ids:
        audit.record(
            AuditEntry.Action.READ_PERSONAL,
            ("customers.person", str(read_ids[0]) if len(read_ids) == 1 else "", f"{len(read_ids)}"),
            user=user,
            people=read_ids[:1000],
            count=len(read_ids),
            fields=list(fields) + [t for t in texts if t in read_texts],
            reason=audit.cut(reveal_reason.strip(), 500),
            purpose=purpose,
        )
    return out
