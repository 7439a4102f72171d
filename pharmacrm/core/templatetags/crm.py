"""Template helpers for PharmaCRM pages: masked phones, audit values, choice labels."""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.utils import dateformat, timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from pharmacrm.core import wording
from pharmacrm.core.numbers import percent_text
from pharmacrm.core.personal import MASKERS, audit_text, free_text, masks_free_text

register = template.Library()


@register.filter
def field_key(field) -> str:
    """What a field's wrapper and error ids are made of (field-<key>, id_<key>_error): its name, or for a form given
    its own ids (customers.forms.OwnIdsMixin: several forms on one page) its id without the "id_"."""
    auto = field.auto_id
    return auto.removeprefix("id_") if auto else field.html_name


@register.filter
def masked_phone(value: str) -> str:
    """A phone number as lists and search results show it: never in clear."""
    return MASKERS["mobile"](value) if value else ""


@register.simple_tag(takes_context=True)
def shown_text(context, value, clear: bool = False, kept: bool = False) -> str:
    """Free text about a customer (an interaction's notes, influence notes) as this reader may see it: with the
    phone numbers, e-mail addresses and ID card numbers in it masked for a role that sees personal data masked.
    `{% shown_text i.notes as notes %}`; `clear=True`: as typed, the page having revealed it with a reason (audited
    by that reveal: a ticket's text after "Show the contact details in clear"); `kept=True`: a text an audit entry
    keeps (a reveal's reason), which an entry written before may have cut at its length without "…"
    (personal.audit_text)."""
    if clear:
        return value
    shown = audit_text if kept else free_text
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None:
        return shown(value, True)
    masked = getattr(request, "_free_text_masked", None)
    if masked is None:
        masked = request._free_text_masked = masks_free_text(user)
    return shown(value, masked)


AUDIT_LIST_SHOWN = 20  # a list in an audit entry (people read, fields) shows this many items, then a count

# Labels of the keys the services write into audit entries that are no field of the entry's model: details
# (AuditEntry.extra) and a few computed changes (a user's roles, a second factor, a ticket link).
AUDIT_KEYS = {
    "accounts": gettext_lazy("Key accounts"),
    "ack_message_id": gettext_lazy("Acknowledgement message id"),
    "acknowledgement": gettext_lazy("Acknowledgement"),
    "action": gettext_lazy("Action item"),
    "action_id": gettext_lazy("Action item"),
    "action_name": gettext_lazy("Action"),
    "active_key": gettext_lazy("Active key"),
    "actor_name": gettext_lazy("User"),
    "ahead_of": gettext_lazy("Sent ahead of delivery"),  # a failed delivery retried before the user's own retry
    "amendment": gettext_lazy("Amendment"),  # the amendment (补充协议) that changed an agreement's term: its number
    "amount": gettext_lazy("Amount"),  # an order line's, in yuan (stored as amount_fen)
    "attachment": gettext_lazy("Attachment"),
    "attempt": gettext_lazy("Attempt"),  # a training test's, its number
    "attempts_cleared": gettext_lazy("Failed sign-ins cleared"),
    "breaches": gettext_lazy("Breaches"),
    "by_agent": gettext_lazy("Flagged by the agent"),
    "bytes": gettext_lazy("Size (bytes)"),
    "cap": pgettext_lazy("appraisal", "Cap"),  # a KPI indicator's most points
    "case": gettext_lazy("Case"),
    "cases": gettext_lazy("Cases"),
    "cells": gettext_lazy("Cells in the file"),  # a sales-target grid's import: the cells it held
    "changed": gettext_lazy("Changed"),
    "changes": gettext_lazy("Changes"),  # a record's changes inside a detail (the rows an import updated)
    "channel": gettext_lazy("Channel"),
    "clock": gettext_lazy("Clock"),
    "closed": gettext_lazy("Tasks closed"),
    "codes_voided": gettext_lazy("Enrolment codes voided"),
    "coefficient": gettext_lazy("Bonus coefficient"),
    "comment": gettext_lazy("Comment"),
    "complaints": gettext_lazy("complaints"),  # a complaint analysis export: how many complaints
    "consents": gettext_lazy("Consents"),
    "count": gettext_lazy("Quantity"),
    "counted": gettext_lazy("Counted"),  # what an export's quantity counts (an import's error report: its lines)
    "created": gettext_lazy("Created"),
    "created_at": capfirst(gettext_lazy("created at")),  # a field declared without a label (a deleted person's consents)
    "customer": gettext_lazy("Customer"),
    "customers": gettext_lazy("Customers"),
    "dated": gettext_lazy("Tasks dated"),
    "delay_days": gettext_lazy("Days late"),
    "delivery": gettext_lazy("Delivery"),
    "department": gettext_lazy("Department"),
    "department_moved": gettext_lazy("Department"),  # a person's institution followed their department's move
    "departments": gettext_lazy("Departments"),
    "devices_removed": gettext_lazy("Authenticators removed"),
    "digest": gettext_lazy("Digest"),
    "document_sha256": gettext_lazy("Document checksum"),
    "drugs": gettext_lazy("Drugs"),
    "due": gettext_lazy("Due"),
    "due_at": gettext_lazy("Due"),
    "due_date": gettext_lazy("Due date"),
    "enrolment": gettext_lazy("Enrolment code"),
    "entered": gettext_lazy("Customers entering a stage"),
    "errors": gettext_lazy("Errors"),
    "escalations": gettext_lazy("Escalations"),
    "evaluation": gettext_lazy("Evaluation"),
    "expires_at": gettext_lazy("Expires"),
    "festival": gettext_lazy("Festival"),  # the festival a care reminder was sent for (its day and name)
    "fields": gettext_lazy("Fields"),
    "file": gettext_lazy("File"),
    "file_name": gettext_lazy("File"),
    "files": gettext_lazy("Stored files (archive)"),
    "files_count": gettext_lazy("Number of stored files"),
    "files_sha256": gettext_lazy("Stored files checksum"),
    "filters": gettext_lazy("Filters"),
    "floor": pgettext_lazy("appraisal", "Floor"),
    "follow_up": gettext_lazy("Follow-up"),
    "format": gettext_lazy("Format"),
    "goal": pgettext_lazy("appraisal", "Target"),
    "grade": gettext_lazy("Grade"),
    "group": gettext_lazy("Rows per"),  # a service performance export: what its rows are
    "holder": gettext_lazy("Holder"),
    "hospital_moved": gettext_lazy("Hospital"),  # a department's region followed its hospital's move
    "import_job": gettext_lazy("Import"),
    "in_force": gettext_lazy("in force"),  # an interim evaluation run: the period whose tiers stay in force
    "indicator": gettext_lazy("Indicator"),
    "institution": gettext_lazy("Institution"),
    "institution_merged": gettext_lazy("Merged record"),  # people and departments a merge moved to the survivor
    "institutions": gettext_lazy("Institutions"),
    "interim": gettext_lazy("interim standing"),  # an evaluation run of a period still under way
    "interrupted": gettext_lazy("Interrupted"),  # an import stopped by its worker's end
    "jurisdiction": gettext_lazy("Jurisdiction"),
    "kept": gettext_lazy("Closed ticket left as it was"),
    "key_problems": gettext_lazy("Key problems"),
    "keyring_restored": gettext_lazy("Key ring restored"),
    "kind": gettext_lazy("Kind"),
    # a person's institution or department followed their department becoming a hospital, or the reverse
    "kind_changed": gettext_lazy("Institution whose type changed"),
    "label": gettext_lazy("Name"),
    "late": gettext_lazy("Late"),
    "level": gettext_lazy("Level"),
    "lifecycle": gettext_lazy("Customers of kind"),
    "link": gettext_lazy("Link"),
    "mailed": gettext_lazy("To be mailed"),  # a survey campaign started: how many of its customers get a mail
    "masked": gettext_lazy("Personal data masked"),
    "merged": gettext_lazy("Merged record"),
    "merged_code": gettext_lazy("Merged record's code"),
    "message_id": gettext_lazy("Message id"),
    "method": gettext_lazy("Method"),
    "mode": gettext_lazy("Mode"),
    "moved": gettext_lazy("Records moved"),
    "name": gettext_lazy("Name"),
    "new_reply_address": gettext_lazy("Reply address not on record for the customer"),
    "not_a_duplicate_of": gettext_lazy("Not the same customer as"),  # "not the same customer" (customers.services)
    "not_held": gettext_lazy("Reports not imported"),  # E2B messages read but not held as cases
    "note": gettext_lazy("Note"),
    "nullification": gettext_lazy("Nullification"),
    "opinion": gettext_lazy("Opinion"),
    "overdue": gettext_lazy("Overdue"),
    "owner": gettext_lazy("Owner"),
    "paid_amount": gettext_lazy("Paid"),  # an order line's, in yuan (stored as paid_fen)
    "passed": gettext_lazy("Passed"),  # a training test's attempt
    "password_changed": gettext_lazy("Password changed"),
    "people": gettext_lazy("People"),
    "period": gettext_lazy("Period"),
    "person": gettext_lazy("Person"),
    "plan": gettext_lazy("Service plan"),
    "place_in_line": gettext_lazy("Place on the waiting list"),  # a training session's waiting list joined
    "positions": gettext_lazy("Positions"),
    "previous_key": gettext_lazy("Previous key"),
    "previous_keyring": gettext_lazy("Previous key ring"),
    "replaced_up_to": gettext_lazy("Audit trail replaced, up to entry"),  # a restore: the last entry before it
    "replaced_hash": gettext_lazy("Hash of that entry"),
    "provisional": gettext_lazy("Tasks still provisional"),
    "provisional_year": gettext_lazy("Calendar year missing: due dates provisional"),
    "pruned": gettext_lazy("Keys removed"),
    "purpose": gettext_lazy("Purpose"),
    "q": gettext_lazy("Search"),  # the search text of a customer export's filters
    "quality": gettext_lazy("Quality complaint"),
    "reactions": gettext_lazy("Reactions"),
    "reason": gettext_lazy("Reason"),
    "refused": gettext_lazy("Refused: over the hourly limit"),  # a look-up by a whole phone number or e-mail
    "reassigned_to": gettext_lazy("Reassigned to"),
    "redated": gettext_lazy("Tasks dated for good"),
    "repeat": gettext_lazy("Repeats"),  # a survey campaign made again every period by the worker
    "repeat_paused": gettext_lazy("Repeating paused"),
    "repeated_from": gettext_lazy("Repeats the campaign"),
    "next_period": gettext_lazy("Next period"),
    "recipient": gettext_lazy("Mailed to"),  # a scheduled report's address, masked
    "as_of": gettext_lazy("As of"),  # the day a scheduled snapshot report (key-account progress) was counted on
    "received_at": gettext_lazy("Received"),
    "reencrypted": gettext_lazy("Values re-encrypted"),
    "reopened": gettext_lazy("Tasks reopened"),
    "replayed_request": gettext_lazy("Answer first given to request"),  # an API retry's kept answer (core.idempotency)
    # a person's region is a field declared without a label (it follows the institution's): as institutions name it
    "region": capfirst(gettext_lazy("region")),
    "reissued": gettext_lazy("Document reissued"),
    "remaining": gettext_lazy("Values still under older keys"),
    "replaced_by": gettext_lazy("Replaced by"),
    "report": gettext_lazy("Report"),
    "responded": gettext_lazy("First response recorded"),
    "retention_classes": gettext_lazy("Retention per class"),
    "retention_fallback": gettext_lazy("Retention otherwise"),
    "retransmission": gettext_lazy("Retransmission"),
    "review": gettext_lazy("Review opinion"),
    "role": gettext_lazy("Role"),
    "roles": gettext_lazy("Roles"),
    "row": gettext_lazy("Row"),  # the file's row of a record an import updated
    "rows": gettext_lazy("Rows"),
    "rows_with_errors": gettext_lazy("Rows with errors"),
    "run": gettext_lazy("Evaluation run"),
    "runs": gettext_lazy("Evaluation runs"),
    "scope": gettext_lazy("Whose customers"),  # a channel effect export
    "score": gettext_lazy("Score"),
    "second_factor": gettext_lazy("Second factor"),
    "seed": gettext_lazy("Random seed"),
    "serious": gettext_lazy("Serious"),  # a safety flag's: the net saw a serious outcome
    "service_team": gettext_lazy("Service team"),  # a key account's team (core.Team), made with the account
    "sessions_ended": gettext_lazy("Sessions ended"),
    "sha256": gettext_lazy("File checksum"),
    "sheets": gettext_lazy("Sheets"),  # an XLSX export beyond a sheet's rows goes on in further sheets
    "signature": gettext_lazy("Signature"),
    "signature_id": gettext_lazy("Signature"),
    "since": gettext_lazy("From"),
    "size": gettext_lazy("Size (bytes)"),
    "sort": gettext_lazy("Sort by"),  # a customer lifetime value export
    "source": gettext_lazy("Source"),
    "status": gettext_lazy("Status"),
    "submission": gettext_lazy("Submission"),
    "submissions": gettext_lazy("Submissions"),
    "tag": gettext_lazy("Tag"),
    "target": gettext_lazy("Data"),
    "team": gettext_lazy("Team"),
    "team_lead": gettext_lazy("Team lead"),  # a de-listed key account's team: its lead let go (keyaccounts.services)
    "team_members": gettext_lazy("Service team"),  # … and the users who left its team (core.Team membership)
    "teams": gettext_lazy("Teams"),
    "terms": gettext_lazy("Terms found"),
    "ticket": gettext_lazy("Ticket"),
    "tickets": gettext_lazy("Tickets"),
    "tokens_revoked": gettext_lazy("API tokens revoked"),
    "type": gettext_lazy("Type"),
    "unchanged": gettext_lazy("Unchanged"),
    "undated_year": gettext_lazy("Calendar year missing"),
    "unmatched": gettext_lazy("Unmatched"),
    "until": gettext_lazy("To"),
    "updated": gettext_lazy("Updated"),
    "user": gettext_lazy("User"),
    "vendor": gettext_lazy("Database"),
    "version": gettext_lazy("Version"),
    "via": gettext_lazy("Signed in via"),
    "view": gettext_lazy("Endpoint"),
    "waiting_list": gettext_lazy("From the waiting list"),  # an enrolment a freed place gave to the first waiting
    "warned": gettext_lazy("Warnings"),  # a sweep's batch of clocks warned of their deadline
    "warnings": gettext_lazy("Warnings"),
    "weight": gettext_lazy("Weight"),
    "window": gettext_lazy("Days after the contact"),  # the channel effect's export
}

# Codes the services write as detail values, as people read them.
AUDIT_VALUES = {
    "via": {"web": gettext_lazy("web page"), "api": gettext_lazy("API")},
    "purpose": {
        "view": gettext_lazy("page"),
        "person page": gettext_lazy("person page"),
        "institution page": gettext_lazy("institution page"),
        "reveal": gettext_lazy("revealed with a reason"),
        "search by phone": gettext_lazy("search by a whole phone number"),  # customers.search.check_contact_look_up
        "search by email": gettext_lazy("search by a whole e-mail address"),
        "edit form": gettext_lazy("edit form"),
        "export": gettext_lazy("export"),
        "merge": gettext_lazy("merge"),
        "ticket page": gettext_lazy("ticket page"),
        "ticket conversation": gettext_lazy("ticket conversation"),
        "api": gettext_lazy("API"),
        "api-list": gettext_lazy("API list"),
        "case page": gettext_lazy("case page"),
        "case edit form": gettext_lazy("case edit form"),
        "case follow-up form": gettext_lazy("case follow-up form"),
        "idempotent replay": gettext_lazy("API retry answered from the kept answer"),
    },
    # the reasons the key-account programme records for the changes it makes itself (keyaccounts.services): the
    # customer's tier and an agreement ended by a listing or de-listing, the times of a stored evaluation recomputed
    "reason": {
        "evaluation": gettext_lazy("customer evaluation"),
        "key-account listing": gettext_lazy("key-account listing"),
        "key-account de-listing": gettext_lazy("key-account de-listing"),
        "response and resolution without the time waiting on the customer (rule of session 31)": gettext_lazy(
            "response and resolution times recomputed without the time waiting on the customer"
        ),
        # a ticket's deadline counted again (servicedesk.services): a breach withdrawn, an undelivered reply
        "breach withdrawn": gettext_lazy("deadline missed withdrawn (the deadline counted again)"),
        "reply not delivered": gettext_lazy("reply not delivered"),
        "reply not delivered, recorded afterwards": gettext_lazy("reply not delivered, recorded afterwards"),
        "wrong one-time code": gettext_lazy("wrong one-time code"),  # a sign-in or a signature refused
        # why a sign-in failed (core.signals)
        "account locked": gettext_lazy("account locked after repeated failures; the password was not checked"),
        "wrong password": gettext_lazy("wrong password"),
        "unknown username": gettext_lazy("unknown username"),
        "account deactivated": gettext_lazy("account deactivated"),
        "wrong current password": gettext_lazy("wrong current password (password change)"),
        # why a place on a training session's waiting list went (training.classroom)
        "enrolled": gettext_lazy("enrolled in the session"),
        "left": gettext_lazy("taken off the waiting list"),
        "no longer needed": gettext_lazy("passed over: the course completed, the account closed or no training role"),
        # purchases put right (sales 0016, `pharmacrm orders split-check --repair`, the split orders page)
        "product code in another letter case": gettext_lazy("one product code in any letter case: spellings merged"),
        "split order": gettext_lazy("order split between customers, given to one"),
        "split order date": gettext_lazy("order split between two order dates, given the one imported last"),
        "split order date chosen": gettext_lazy("order split between two order dates, given the one an operator chose"),
    },
    "format": {
        "signed copy": gettext_lazy("signed copy"),
        "报告表 PDF": gettext_lazy("adverse drug reaction report form (PDF)"),  # as the safety pages write it
    },
    # how a change came in (sales.pipeline, sales.targets, servicedesk.goals): the same service behind each
    "source": {"demo": gettext_lazy("demo data"), "form": gettext_lazy("web page"),
               "import": gettext_lazy("file import"), "api": gettext_lazy("API"),
               # what moved customers into a stage whose tasks were made (engagement.playbook)
               "opportunity": gettext_lazy("opportunity"), "sweep": gettext_lazy("Background worker")},
    "lifecycle": {"institution": gettext_lazy("institution"), "person": gettext_lazy("person")},
    # the options of an export, as its page names them (servicedesk.performance.GROUPS, engagement.channels'
    # scopes, the customer lifetime value page's sorts)
    "group": {"agent": gettext_lazy("Agent"), "team": gettext_lazy("Team"), "class": gettext_lazy("Customer class"),
              "category": gettext_lazy("Category"), "channel": gettext_lazy("Channel")},
    "scope": {"all": gettext_lazy("All I may see"), "teams": gettext_lazy("Mine and my teams'"),
              "mine": gettext_lazy("Mine")},
    "sort": {"projected": gettext_lazy("Projected value"), "historic": gettext_lazy("Paid to date"),
             "average": gettext_lazy("Average monthly value"), "tenure": gettext_lazy("Tenure")},
    # a customer lifetime value run (sales.clv): what it computed, where the fallback retention came from
    "kind": {"sales.clv": gettext_lazy("Customer lifetime value")},
    "retention_source": {"class": gettext_lazy("Customer class"), "company": gettext_lazy("company"),
                         "setting": gettext_lazy("Settings")},
    "signature": {"approved": gettext_lazy("approved"), "rejected": gettext_lazy("rejected")},
    "second_factor": {"totp": gettext_lazy("authenticator app"), "enrolment_code": gettext_lazy("enrolment code"),
                      "pending": gettext_lazy("password only; one-time code not yet given")},
    "vendor": {"postgresql": "PostgreSQL", "sqlite": "SQLite"},  # a backup's database: product names
    "action_name": {"retry": gettext_lazy("delivery retried"), "send_test": gettext_lazy("test message sent")},
    "report": {"reconciliation": gettext_lazy("reconciliation report"), "import errors": gettext_lazy("import errors")},
    "counted": {"error lines": gettext_lazy("error lines")},  # an import's error report: one line per error
    # what a file imported without an import job held (sales.targets: the sales-target grid); a job's: ImportJob.Target
    "target": {"sales targets": gettext_lazy("Sales targets")},
    "outcome": {"no such case": gettext_lazy("no case with this worldwide case id")},  # an E2B nullification
}


def _service_goal_indicators() -> dict:
    from pharmacrm.servicedesk.goals import INDICATORS

    return {name: i.label for name, i in INDICATORS.items()}


# Fields that hold codes without a choice list on the model: "app.model" → {field: () → {code: label}}
AUDIT_FIELD_CODES = {"servicedesk.servicegoal": {"indicator": _service_goal_indicators}}


def _field_codes(model, name) -> dict:
    """{code: label} of a field of the entry's model that holds codes without choices (AUDIT_FIELD_CODES), else {}."""
    model = _audit_model(model)
    codes = AUDIT_FIELD_CODES.get(model._meta.label_lower, {}).get(name) if model is not None else None
    return codes() if codes is not None else {}


def _audit_choices() -> dict:
    """Details (also inside a list of records, such as an SLA sweep's breaches) whose values are codes of a
    choice list but no field of the entry's model: key → the choices."""
    from pharmacrm.customers.choices import InstitutionType
    from pharmacrm.keyaccounts.choices import Department, ModelKind, Opinion
    from pharmacrm.safety import choices as safety
    from pharmacrm.sales.kpi import GradeCode, IndicatorCode
    from pharmacrm.servicedesk.choices import ClockKind

    return {
        "indicator": IndicatorCode,  # a KPI appraisal scheme's indicators and bonus coefficients
        "grade": GradeCode,
        "clock": ClockKind,  # an SLA clock's kind (a safety clock's entries give its id, a number)
        "acknowledgement": safety.AckStatus,
        "channel": safety.Channel,
        "jurisdiction": safety.Jurisdiction,
        "evaluation": ModelKind,
        "type": InstitutionType,  # the type filter of a customer export
        "department": Department,  # a reviewer's opinion on a key-account proposal
        "opinion": Opinion,
    }


# API views without a model to be named by: a refused call names its view class
API_VIEW_LABELS = {
    "OrderImportView": gettext_lazy("Order import"),
    "ImportCreateView": gettext_lazy("Import"),
    "ImportDetailView": gettext_lazy("Import"),
    "ExportView": gettext_lazy("Export"),
    "SearchView": gettext_lazy("Search"),
    "TokenView": gettext_lazy("API token"),
}
_INTERACTION_SOURCE = re.compile(r"^interaction (\d{1,18})$")  # how safety entries record an interaction

# Details that name other records: key → the model they point to ("" = the entry's own model).
AUDIT_REFERENCES = {
    "person": "customers.person", "people": "customers.person", "institution": "customers.institution",
    "owner": "core.user", "merged": "", "import_job": "customers.importjob", "tickets": "servicedesk.ticket",
    "holder": "core.user", "reassigned_to": "core.user",  # in the records of an SLA sweep (breaches, escalations)
    "customer": "customers.institution",  # the customer filter of an order export
    # what moved a department or person along (customers.services): the hospital, department or merged institution
    "hospital_moved": "customers.institution", "department_moved": "customers.institution",
    "institution_merged": "customers.institution", "kind_changed": "customers.institution",
    # a team by its id (a service goal's, a training results export's filter): its name in the reader's language
    "team": "core.team",
    # a key account's service team (core.Team) in its changes: made with the account, its lead and members let go
    # when the account is de-listed — names, not ids
    "service_team": "core.team", "team_lead": "core.user", "team_members": "core.user",
}  # fmt: skip
# Changes of a model whose before/after is a record of another model ("app.model" → {key: that model}): a key
# account's team member added or removed, {"user": 7, "role": "pm"}, read with the member's labels — the user by
# name, the role in the team by its label, not "User: 7; Role: pm"
AUDIT_CHANGE_RECORDS = {"keyaccounts.keyaccount": {"team": "keyaccounts.teammember"}}
# Details that hold whole records of another model (a deleted person's consent records): key → that model
AUDIT_RECORD_MODELS = {"consents": "customers.consent", "lines": "engagement.communicationplanline"}
AUDIT_ID_LISTS = frozenset({"people", "tickets"})  # ids when a list, a count otherwise (an import's people)

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")


def _audit_model(model):
    """The model class of an instance, a class or an "app.model" label; None when there is none."""
    if isinstance(model, str):
        try:
            return apps.get_model(model)
        except (LookupError, ValueError):
            return None
    return getattr(model, "_meta", None) and (model if isinstance(model, type) else type(model))


def _audit_field(model, name: str):
    """The model's field of that name (a column, a many-to-many or a reverse relation), else None."""
    model = _audit_model(model)
    if model is None or not isinstance(name, str):
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _index(items: list, item) -> int:
    """Where `item` is in `items`, else after them all."""
    return items.index(item) if item in items else len(items)


def _change_record_model(model, name):
    """The model of the records a change of `model` holds as its before/after (AUDIT_CHANGE_RECORDS), else None."""
    model = _audit_model(model)
    label = AUDIT_CHANGE_RECORDS.get(model._meta.label_lower, {}).get(name) if model is not None else None
    return _audit_model(label) if label else None


def _audit_time(value: str) -> str:
    """An ISO time stored in an entry, in the viewer's time zone and as the page shows times; else the text."""
    if not _DATETIME.match(value):
        return value
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return value
    if parsed is None:
        return value
    if timezone.is_aware(parsed):
        parsed = timezone.localtime(parsed)
    return dateformat.format(parsed, "Y-m-d H:i:s")


@register.filter
def audit_value(value) -> str:
    """One before/after value of an audit entry, readable: times in the viewer's zone, long lists cut short."""
    if value is None or value in ("", "None") or value == [] or value == {}:  # "None": a None written as text
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, (list, tuple)):
        shown = ", ".join(audit_value(v) for v in value[:AUDIT_LIST_SHOWN])
        if len(value) > AUDIT_LIST_SHOWN:
            shown += " " + _("… (%(count)d in all)") % {"count": len(value)}
        return shown
    if isinstance(value, dict):
        return wording.labelled((audit_label(None, k), audit_detail(None, k, v)) for k, v in value.items())
    if isinstance(value, str):
        return _audit_time(value)
    return str(value)


# Who acted when no user did (the entry's actor_name, without a user): what each is called on the page
AUDIT_SYSTEM_ACTORS = {
    "system": gettext_lazy("System"),
    "worker": gettext_lazy("Background worker"),
    "net": gettext_lazy("Safety screening"),
    "demo": gettext_lazy("Demo data"),
    "scheduler": gettext_lazy("Scheduled backup"),
}


@register.filter
def audit_actor(entry) -> str:
    """The name of who made an entry: a system actor's in the reader's language, else the user name."""
    name = getattr(entry, "actor_name", "") or ""
    if getattr(entry, "actor_id", None) is None and name in AUDIT_SYSTEM_ACTORS:
        return str(AUDIT_SYSTEM_ACTORS[name])
    return name


@register.simple_tag
def audit_label(model, name) -> str:
    """The label of a key of an audit entry: the model field's verbose name (a reverse relation: the related
    model's plural name), a known detail's label, else the key itself."""
    field = _audit_field(model, name)
    if field is not None:
        if getattr(field, "auto_created", False) and not getattr(field, "concrete", True):
            return capfirst(str(field.related_model._meta.verbose_name_plural))
        verbose = getattr(field, "verbose_name", None)
        # a field declared without a label has its name as an English one: a known key's label reads better (a
        # foreign key found by its column, signature_id, has the field's name, "signature", as its label)
        unlabelled = verbose in (name.replace("_", " "), field.name.replace("_", " "))
        if verbose and not (unlabelled and name in AUDIT_KEYS):
            return capfirst(str(verbose))
    label = AUDIT_KEYS.get(name) if isinstance(name, str) else None
    if label is not None:
        return str(label)
    if isinstance(name, str) and "." in name:  # "customers.person.institution": records moved by a merge
        target = _audit_model(name.rsplit(".", 1)[0])
        if target is not None:
            return f"{capfirst(str(target._meta.verbose_name))} · {audit_label(target, name.rsplit('.', 1)[1])}"
    return str(name)


def _labelled(names, model_label: str, value):
    """The current label of the record model_label:value, from the page's batch of labels (None if unknown)."""
    if names is None or value in (None, "") or isinstance(value, (bool, dict, list)):
        return None
    return names.get(model_label, {}).get(str(value))


def _audit_code(name, value) -> str:
    """A value of a key that is no field (a computed change or a detail): known codes translated."""
    if name == "roles" and isinstance(value, list):
        from pharmacrm.core.roles import Role

        return audit_value([str(Role(v).label) if v in Role.values else v for v in value])
    known = AUDIT_VALUES.get(name, {}) if isinstance(name, str) else {}
    if isinstance(value, str) and value in known:
        return str(known[value])
    if name == "format" and isinstance(value, str) and value.isalnum():
        return value.upper()  # csv, xlsx, pdf
    return audit_value(value)


def _audit_kept_records(name: str, value: list[dict], names=None) -> str:
    """Records kept whole in an entry (a person's consents, a plan's lines): each field by its label, choices by
    theirs (AUDIT_RECORD_MODELS names the model)."""
    kept = _audit_model(AUDIT_RECORD_MODELS[name])
    shown = ", ".join(
        wording.labelled((audit_label(kept, k), audit_display(kept, k, v, names)) for k, v in record.items())
        for record in value[:AUDIT_LIST_SHOWN]
    )
    if len(value) > AUDIT_LIST_SHOWN:
        shown += " " + _("… (%(count)d in all)") % {"count": len(value)}
    return shown


@register.simple_tag
def audit_display(model, name: str, value, names=None) -> str:
    """An audit value as people read it: choice labels instead of codes, names instead of ids (from `names`,
    {"app.model": {"pk": label}}, see audit_labels; region names always), times in the viewer's zone.
    Copes with any key: reverse relations, fields that no longer exist, lists and dicts."""
    codes = _field_codes(model, name)
    if isinstance(value, str) and value in codes:
        return str(codes[value])
    kept = _change_record_model(model, name)
    if kept is not None and isinstance(value, dict) and value:
        # in the model's field order: PostgreSQL's jsonb gives the keys back in an order of its own
        order = [f.name for f in kept._meta.get_fields()]
        return _audit_record(kept, dict(sorted(value.items(), key=lambda kv: _index(order, kv[0]))), names)
    field = _audit_field(model, name)
    if field is None or not getattr(field, "concrete", False):
        if name in AUDIT_RECORD_MODELS and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return _audit_kept_records(name, value, names)
        target = AUDIT_REFERENCES.get(name) if isinstance(name, str) and field is None else None
        if target and value not in (None, "", []):  # a change that is no field, naming records: by their names
            if isinstance(value, list):
                return audit_value([_labelled(names, target, v) or v for v in value])
            return _labelled(names, target, value) or audit_value(value)
        return _audit_code(name, value)
    choices = getattr(field, "flatchoices", None) if getattr(field, "choices", None) else None
    if choices and isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
        return str(dict(choices).get(value, value))
    related = getattr(field, "related_model", None)
    if related is None or value in (None, ""):
        return audit_value(value)
    label = related._meta.label_lower
    if isinstance(value, list):
        return audit_value([_labelled(names, label, v) or v for v in value])
    found = _labelled(names, label, value)
    if found is not None:
        return found
    if label in ("core.region", "core.user") and isinstance(value, (str, int)) and not isinstance(value, bool):
        found = related.objects.filter(pk=value).first()  # a record inside a detail: not in the page's batch
        return str(getattr(found, "display_name", "") or found) if found else audit_value(value)
    return audit_value(value)


@register.simple_tag
def audit_detail(model, name: str, value, names=None, path: str = "") -> str:
    """One detail of an audit entry (AuditEntry.extra) as people read it: field names as the model's labels,
    known codes translated, records by their names, choices of the entry's model by their labels. `path`: the
    request path of an API entry (a refused call's endpoint is named from it)."""
    if name == "view" and isinstance(value, str) and value:
        return audit_endpoint(value, path)
    if name == "source" and isinstance(value, str) and _INTERACTION_SOURCE.match(value):
        return _("Interaction %(id)s") % {"id": _INTERACTION_SOURCE.match(value)[1]}
    target = AUDIT_REFERENCES.get(name)
    if target is not None and (name not in AUDIT_ID_LISTS or isinstance(value, list)):
        ref = target or (_audit_model(model)._meta.label_lower if _audit_model(model) else "")
        if isinstance(value, list):
            return audit_value([_labelled(names, ref, v) or v for v in value])
        return _labelled(names, ref, value) or audit_value(value)
    if name in ("fields", "changed") and isinstance(value, list):
        return ", ".join(audit_label(model, f) for f in value[:AUDIT_LIST_SHOWN]) + (
            " " + _("… (%(count)d in all)") % {"count": len(value)} if len(value) > AUDIT_LIST_SHOWN else ""
        )
    if name == "target" and isinstance(value, str):
        from pharmacrm.customers.models import ImportJob

        label = dict(ImportJob.Target.choices).get(value)
        return str(label) if label is not None else _audit_code(name, value)  # an import of no job (sales targets)
    if name == "roles" or isinstance(value, str) and value in AUDIT_VALUES.get(name, {}):
        return _audit_code(name, value)
    if name == "changes" and isinstance(value, dict) and value:  # a record's changes (an import's updated row)
        return _audit_record(model, value, names, changes=True)
    if isinstance(value, dict) and value:
        part = _audit_field(model, name)  # the changes of a part of the record (a case's quality complaint)
        if part is not None and part.one_to_one and not part.concrete:
            return _audit_record(part.related_model, value, names, changes=True)
        return _audit_record(model, value, names)
    if name in AUDIT_RECORD_MODELS and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return _audit_kept_records(name, value, names)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        shown = ", ".join(_audit_record(model, v, names) for v in value[:AUDIT_LIST_SHOWN])
        if len(value) > AUDIT_LIST_SHOWN:
            shown += " " + _("… (%(count)d in all)") % {"count": len(value)}
        return shown
    codes = _field_codes(model, name)
    if isinstance(value, str) and value in codes:  # a service goal's indicator
        return str(codes[value])
    field = _audit_field(model, name)
    if field is not None and getattr(field, "concrete", False) and (field.choices or field.related_model):
        # a region (an export's filter) by its name, a user by theirs, as in the changes: 110100 is 北京市
        return audit_display(model, name, value, names)
    choices = _audit_choices().get(name) if isinstance(name, str) else None
    if choices is not None and isinstance(value, str) and value in choices.values:
        return str(choices(value).label)
    return _audit_code(name, value)  # a code of one key known elsewhere (AUDIT_VALUES), a format, or as recorded


def _audit_record(model, record: dict, names=None, changes: bool = False) -> str:
    """A record inside a detail (one breach of an SLA sweep, one overdue clock …): each key labelled and each
    value shown as a detail of the entry's model (codes translated, users by their names). `changes`: the
    values are [before, after] pairs of the model's fields."""

    def shown(key, value) -> str:
        if changes and isinstance(value, list) and len(value) == 2:
            before, after = (audit_display(model, key, v, names) for v in value)
            return f"{before} → {after}"
        return audit_detail(model, key, value, names)

    return wording.labelled((audit_label(model, k), shown(k, v)) for k, v in record.items())


@functools.cache
def _api_views() -> dict[str, type]:
    """The API's view classes by name (what a refused call records), from the URL configuration."""
    from django.urls import URLResolver, get_resolver

    found: dict[str, type] = {}

    def walk(patterns) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif getattr(pattern.callback, "cls", None) is not None:
                found.setdefault(pattern.callback.cls.__name__, pattern.callback.cls)

    walk(get_resolver().url_patterns)
    return found


def _api_model(cls):
    """The model an API view serves (its queryset's, else its serializer's), or None."""
    model = getattr(getattr(cls, "queryset", None), "model", None)
    if model is None:
        model = getattr(getattr(getattr(cls, "serializer_class", None), "Meta", None), "model", None)
    return model


def audit_endpoint(view_class: str, path: str = "") -> str:
    """A refused API call's endpoint as people read it, translated: the name of what it serves (singular for
    a record's URL, plural for a list's: the path tells), a label of our own for views without a model, else
    a generic label. Never the view's class name."""
    from django.urls import Resolver404, resolve

    from pharmacrm.core.api_utils import view_name

    label = API_VIEW_LABELS.get(view_class)
    if label is not None:
        return str(label)
    cls, detail = None, None
    if path:
        try:
            func = resolve(path).func
        except Resolver404:
            func = None
        if getattr(getattr(func, "cls", None), "__name__", None) == view_class:
            cls, detail = func.cls, (getattr(func, "initkwargs", None) or {}).get("detail")
    if cls is None:
        cls = _api_views().get(view_class)
    if cls is None or _api_model(cls) is None:
        return _("Unnamed endpoint")
    view = cls()  # no request: only to be named (an extra action is named by its model, not its English route)
    view.detail = detail
    return view_name(view)


def audit_references(entry) -> dict[str, set[str]]:
    """{"app.model": {pk, …}} of the records an entry names: its object, foreign keys in its changes, and
    details such as people and institutions (the first AUDIT_LIST_SHOWN of a list, as shown)."""
    out: dict[str, set[str]] = {}

    def add(label: str, value) -> None:
        values = value[:AUDIT_LIST_SHOWN] if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, (int, str)) and not isinstance(v, bool) and str(v).isdecimal():
                out.setdefault(label, set()).add(str(v))

    if "." in entry.object_type and entry.object_id:
        add(entry.object_type, entry.object_id)
    model = _audit_model(entry.object_type)
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    for name, pair in changes.items():
        field = _audit_field(model, name)
        related = getattr(field, "related_model", None) if field is not None and field.concrete else None
        kept = _change_record_model(model, name)
        if kept is not None and isinstance(pair, list):  # records in a change (a team member): their users …
            for record in pair:
                for key, v in record.items() if isinstance(record, dict) else ():
                    inner = _audit_field(kept, key)
                    if inner is not None and inner.concrete and inner.related_model is not None:
                        add(inner.related_model._meta.label_lower, v)
        elif related is not None and isinstance(pair, list):
            for v in pair:
                add(related._meta.label_lower, v)
        elif field is None and AUDIT_REFERENCES.get(name) and isinstance(pair, list):  # a change naming records
            for v in pair:
                add(AUDIT_REFERENCES[name], v)
    extra = entry.extra if isinstance(entry.extra, dict) else {}
    for name, value in extra.items():
        for record in value[:AUDIT_LIST_SHOWN] if isinstance(value, list) else [value]:
            if isinstance(record, dict):  # records inside a detail: the users of an SLA sweep's breaches …
                for key, ref in record.items():
                    if AUDIT_REFERENCES.get(key):
                        add(AUDIT_REFERENCES[key], ref)
        target = AUDIT_REFERENCES.get(name)
        if target is None or (name in AUDIT_ID_LISTS and not isinstance(value, list)):
            continue
        if target or model is not None:
            add(target or model._meta.label_lower, value)
    return out


# Models whose label (str) reads only the row's own columns: one query per model gives a page's labels.
AUDIT_LABELLED = frozenset({
    "core.user", "core.team", "core.region", "customers.institution", "customers.person", "customers.importjob",
    "servicedesk.ticket", "servicedesk.product", "servicedesk.answertemplate", "engagement.interaction",
    "keyaccounts.keyaccount", "keyaccounts.proposal", "keyaccounts.agreement", "keyaccounts.meeting",
    "keyaccounts.planitem", "safety.safetycase", "safety.flag", "sales.churnsignal",
})  # fmt: skip


def audit_labels(entries) -> dict[str, dict[str, str]]:
    """The current labels of the records a page of audit entries names, {"app.model": {pk: label}}: one query
    per model (only models in AUDIT_LABELLED). Records deleted since are missing: pages fall back to what
    the entry recorded."""
    wanted: dict[str, set[str]] = {}
    for entry in entries:
        for label, pks in audit_references(entry).items():
            if label in AUDIT_LABELLED:
                wanted.setdefault(label, set()).update(pks)
    out: dict[str, dict[str, str]] = {}
    for label, pks in wanted.items():
        model = _audit_model(label)
        if model is None:
            continue
        pk_field = model._meta.pk
        try:
            keys = [pk_field.to_python(pk) for pk in pks]
        except ValidationError:  # an id the model cannot hold names nothing
            continue
        out[label] = {str(obj.pk): str(obj) for obj in model._base_manager.filter(pk__in=keys)}
    return out


def _entry_code(entry, key):
    """A code an entry keeps under `key`: in its details, else the value after a change (a creation's); else None."""
    extra = entry.extra if isinstance(entry.extra, dict) else {}
    if key in extra:
        return extra[key]
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    pair = changes.get(key)
    return pair[1] if isinstance(pair, list) and len(pair) == 2 else None


def _service_goal_name(entry, names) -> str | None:
    """A service goal by its team (the desk's: none) and indicator in the reader's language, from the codes its
    entries keep (the indicator and team of a creation's changes, or of the details); None for an entry written
    before they were kept, whose recorded name stands."""
    indicator = _entry_code(entry, "indicator")
    label = _service_goal_indicators().get(indicator) if isinstance(indicator, str) else None
    if label is None:
        return None
    team = _entry_code(entry, "team")
    if team is None:
        return str(label)
    return f"{_labelled(names, 'core.team', team) or audit_value(team)} · {label}"


def _choice_label(model_label: str, field: str, code) -> str | None:
    """The label of a choice code of a model's field, in the reader's language; None for no such code."""
    model = _audit_model(model_label)
    if model is None or not isinstance(code, str):
        return None
    label = dict(model._meta.get_field(field).flatchoices).get(code)
    return None if label is None else str(label)


_CODED_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}) ([a-z_]+)$")  # an acceptance's date and result's code


def _acceptance_name(entry, names) -> str | None:
    """A cooperation project's acceptance by its date and result in the reader's language (2026-12-08 通过): from its
    creation's changes, or the codes its name keeps (an export of its attachment); None for an entry that kept
    neither — its name, recorded in its actor's language, stands."""
    accepted_on, result = _entry_code(entry, "accepted_on"), _entry_code(entry, "result")
    if not (isinstance(accepted_on, str) and isinstance(result, str)):
        found = _CODED_NAME.match(entry.object_repr or "")
        accepted_on, result = found.groups() if found else (None, None)
    label = _choice_label("cooperation.acceptance", "result", result)
    return f"{accepted_on} {label}" if label is not None and accepted_on else None


def _consent_name(entry, names) -> str | None:
    """A consent record by its purpose and status in the reader's language (满意度调查 · 已同意), from the codes its
    creation's changes keep; None otherwise (its recorded name stands)."""
    purpose = _choice_label("customers.consent", "purpose", _entry_code(entry, "purpose"))
    status = _choice_label("customers.consent", "status", _entry_code(entry, "status"))
    return f"{purpose} · {status}" if purpose is not None and status is not None else None


# Models whose entries name their record by codes the audit page shows in its reader's language ("app.model" →
# (entry, the page's batch of labels) → the name, or None to show the name recorded): a name made of words of the
# actor's language when recorded would read in the actor's language to every reader
AUDIT_NAMED_BY_CODES = {
    "servicedesk.servicegoal": _service_goal_name,
    "cooperation.acceptance": _acceptance_name,  # a cooperation project's (its date and result)
    "customers.consent": _consent_name,  # a person's consent (its purpose and status)
}


def audit_record_name(entry, names=None) -> str | None:
    """The name of an entry's record in the reader's language when its model is named by codes (AUDIT_NAMED_BY_CODES),
    else None."""
    named = AUDIT_NAMED_BY_CODES.get(entry.object_type)
    return named(entry, names) if named is not None else None


@register.simple_tag
def own_language_names() -> list[tuple[str, str]]:
    """The languages of the language menu, each in its own name (settings.LANGUAGES: 简体中文, English,
    繁體中文) whatever the page's language: {% get_available_languages %} translates the names."""
    return [(code, str(name)) for code, name in settings.LANGUAGES]


@register.simple_tag
def list_separator() -> str:
    """Between linked items that |listing cannot join (it escapes the links): {% for … %}<a …>…</a>{% if not
    forloop.last %}{% list_separator %}{% endif %}{% endfor %} reads 甲、乙 on a Chinese page, "A, B" on an English one."""
    return wording.separator()


@register.simple_tag
def colon() -> str:
    """The colon after a label, in the page's language: {% translate "Category" %}{% colon %}{{ value }} reads
    类别：用药错误 on a Chinese page and "Category: Medication error" on an English one."""
    return wording.colon()


@register.simple_tag
def sentence_gap() -> str:
    """Between two translated sentences: {% translate "A." %}{% sentence_gap %}{% translate "B." %} reads 甲。乙。 on a
    Chinese page (no space after 。) and "A. B." on an English one."""
    return wording.sentence_gap()


@register.filter
def clauses(items) -> str:
    """Phrases that may hold commas, one after another: ；between them on a Chinese page, "; " on an English one."""
    return wording.clauses(items or ())


@register.filter
def aside(text) -> str:
    """A remark in brackets after a value, in the page's language: {{ value }}{{ remark|aside }} reads 4.33（6 份调查问卷）
    on a Chinese page and "4.33 (6 surveys)" on an English one."""
    return wording.aside(text)


@register.filter
def listing(items) -> str:
    """Items in running text: 心内科、肿瘤科 on a Chinese page, "Cardiology, Oncology" on an English one."""
    return wording.listing(items or ())


@register.filter
def dose_unit(code, amount=None) -> str:
    """A drug's dose unit as stored (a UCUM code such as {tbl}), as the reader's language names it; with the
    dose (`{{ d.dose_unit|dose_unit:d.dose }}`) a counted unit agrees with it: 1 tablet, 2 tablets."""
    from pharmacrm.safety.choices import dose_unit_label

    return dose_unit_label(code, amount)


@register.filter
def shipped_name(name) -> str:
    """A name the product may have shipped as data (a reward programme such as 年度优秀客户奖): in the reader's
    language while nobody renamed it (core.builtin); any other name as typed."""
    from pharmacrm.core import builtin

    return builtin.shown(name or "")


@register.filter
def get_item(mapping, key):
    """mapping[key] in a template (None when missing)."""
    if mapping is None:
        return None
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def field_label(model, name: str) -> str:
    """The translated verbose name of a model field (model instance, class or "app.model" label), else the name."""
    if isinstance(model, str):
        try:
            model = apps.get_model(model)
        except (LookupError, ValueError):
            return name
    try:
        return capfirst(str(model._meta.get_field(name).verbose_name))
    except (AttributeError, FieldDoesNotExist):  # audit entries may name fields that no longer exist
        return name


@register.filter
def percent(value, kind: str = "") -> str:
    """A percentage as every page writes it (core.numbers.percent_text): "12.5%", "12%", "—" for none.
    `{{ rate|percent }}` of a figure in percent (12.5), `{{ share|percent:"fraction" }}` of a fraction (0.125),
    `{{ discount|percent:"exact" }}` of a figure somebody set, shown as set (2.25%)."""
    return percent_text(value, fraction=kind == "fraction", exact=kind == "exact")


@register.filter
def share_percent(value) -> str:
    """A weight stored as a fraction ("0.3000") as pages show a percentage somebody set: "30%", "12.25%"."""
    return "" if value is None else percent_text(value, fraction=True, exact=True)


@register.filter
def yuan(value, unit: str = "") -> str:
    """An amount of money as the pages write it (sales.views.money): ¥, thousands separators and two places, a negative
    one with its sign before the ¥ (-¥1,200.00); `{{ fen|yuan:"fen" }}` for an amount kept in fen. ¥{{ x|intcomma }}
    wrote ¥1223679.5 on a Chinese page (the zh-Hans locale groups nothing, and a sum divided by 100 keeps one place)
    beside ¥1,223,679.50 on every other; "—" for no amount."""
    if value is None or value == "":
        return "—"
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if unit == "fen":
        d = d / 100
    d = d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"-¥{-d:,.2f}" if d < 0 else f"¥{d:,.2f}"


@register.filter
def grouped(value) -> str:
    """An amount with thousands separators and two places (1463907 → 1,463,907.00): zh-Hans groups nothing."""
    if value is None or value == "":
        return "—"
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)
