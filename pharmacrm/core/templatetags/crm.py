"""Template helpers for PharmaCRM pages: masked phones, audit values, choice labels."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.utils import dateformat, timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core.personal import MASKERS

register = template.Library()


@register.filter
def masked_phone(value: str) -> str:
    """A phone number as lists and search results show it: never in clear."""
    return MASKERS["mobile"](value) if value else ""


AUDIT_LIST_SHOWN = 20  # a list in an audit entry (people read, fields) shows this many items, then a count

# Labels of the keys the services write into audit entries that are no field of the entry's model: details
# (AuditEntry.extra) and a few computed changes (a user's roles, a second factor, a ticket link).
AUDIT_KEYS = {
    "accounts": gettext_lazy("Key accounts"),
    "action": gettext_lazy("Action item"),
    "action_id": gettext_lazy("Action item"),
    "actor_name": gettext_lazy("User"),
    "breaches": gettext_lazy("Breaches"),
    "by_agent": gettext_lazy("Flagged by the agent"),
    "case": gettext_lazy("Case"),
    "cases": gettext_lazy("Cases"),
    "changed": gettext_lazy("Changed"),
    "codes_voided": gettext_lazy("Enrolment codes voided"),
    "comment": gettext_lazy("Comment"),
    "consents": gettext_lazy("Consents"),
    "clock": gettext_lazy("Clock"),
    "count": gettext_lazy("Quantity"),
    "created": gettext_lazy("Created"),
    "departments": gettext_lazy("Departments"),
    "devices_removed": gettext_lazy("Authenticators removed"),
    "digest": gettext_lazy("Digest"),
    "document_sha256": gettext_lazy("Document checksum"),
    "due_at": gettext_lazy("Due"),
    "due_date": gettext_lazy("Due date"),
    "enrolment": gettext_lazy("Enrolment code"),
    "errors": gettext_lazy("Errors"),
    "escalations": gettext_lazy("Escalations"),
    "expires_at": gettext_lazy("Expires"),
    "fields": gettext_lazy("Fields"),
    "file": gettext_lazy("File"),
    "file_name": gettext_lazy("File"),
    "filters": gettext_lazy("Filters"),
    "follow_up": gettext_lazy("Follow-up"),
    "format": gettext_lazy("Format"),
    "holder": gettext_lazy("Holder"),
    "import_job": gettext_lazy("Import"),
    "institution": gettext_lazy("Institution"),
    "institutions": gettext_lazy("Institutions"),
    "kind": gettext_lazy("Kind"),
    "label": gettext_lazy("Name"),
    "level": gettext_lazy("Level"),
    "link": gettext_lazy("Link"),
    "masked": gettext_lazy("Personal data masked"),
    "merged": gettext_lazy("Merged record"),
    "merged_code": gettext_lazy("Merged record's code"),
    "method": gettext_lazy("Method"),
    "mode": gettext_lazy("Mode"),
    "moved": gettext_lazy("Records moved"),
    "note": gettext_lazy("Note"),
    "overdue": gettext_lazy("Overdue"),
    "owner": gettext_lazy("Owner"),
    "password_changed": gettext_lazy("Password changed"),
    "people": gettext_lazy("People"),
    "period": gettext_lazy("Period"),
    "person": gettext_lazy("Person"),
    "purpose": gettext_lazy("Purpose"),
    "reason": gettext_lazy("Reason"),
    "reassigned_to": gettext_lazy("Reassigned to"),
    "received_at": gettext_lazy("Received"),
    "report": gettext_lazy("Report"),
    "role": gettext_lazy("Role"),
    "roles": gettext_lazy("Roles"),
    "rows": gettext_lazy("Rows"),
    "run": gettext_lazy("Evaluation run"),
    "score": gettext_lazy("Score"),
    "second_factor": gettext_lazy("Second factor"),
    "sha256": gettext_lazy("File checksum"),
    "signature": gettext_lazy("Signature"),
    "signature_id": gettext_lazy("Signature"),
    "size": gettext_lazy("Size (bytes)"),
    "source": gettext_lazy("Source"),
    "status": gettext_lazy("Status"),
    "target": gettext_lazy("Data"),
    "teams": gettext_lazy("Teams"),
    "terms": gettext_lazy("Terms found"),
    "ticket": gettext_lazy("Ticket"),
    "tickets": gettext_lazy("Tickets"),
    "tokens_revoked": gettext_lazy("API tokens revoked"),
    "unchanged": gettext_lazy("Unchanged"),
    "updated": gettext_lazy("Updated"),
    "user": gettext_lazy("User"),
    "version": gettext_lazy("Version"),
    "via": gettext_lazy("Signed in via"),
    "view": gettext_lazy("Endpoint"),
}

# Codes the services write as detail values, as people read them.
AUDIT_VALUES = {
    "via": {"web": gettext_lazy("web page"), "api": gettext_lazy("API")},
    "purpose": {
        "view": gettext_lazy("page"),
        "person page": gettext_lazy("person page"),
        "institution page": gettext_lazy("institution page"),
        "reveal": gettext_lazy("revealed with a reason"),
        "edit form": gettext_lazy("edit form"),
        "export": gettext_lazy("export"),
        "merge": gettext_lazy("merge"),
        "ticket page": gettext_lazy("ticket page"),
        "ticket conversation": gettext_lazy("ticket conversation"),
        "api": gettext_lazy("API"),
        "api-list": gettext_lazy("API list"),
    },
    "format": {"signed copy": gettext_lazy("signed copy")},
    "source": {"demo": gettext_lazy("demo data")},
    "signature": {"approved": gettext_lazy("approved"), "rejected": gettext_lazy("rejected")},
    "second_factor": {"totp": gettext_lazy("authenticator app"), "enrolment_code": gettext_lazy("enrolment code")},
}

# Details that name other records: key → the model they point to ("" = the entry's own model).
AUDIT_REFERENCES = {
    "person": "customers.person", "people": "customers.person", "institution": "customers.institution",
    "owner": "core.user", "merged": "", "import_job": "customers.importjob", "tickets": "servicedesk.ticket",
}  # fmt: skip
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
        return "; ".join(f"{audit_label(None, k)}: {audit_value(v)}" for k, v in value.items())
    if isinstance(value, str):
        return _audit_time(value)
    return str(value)


@register.simple_tag
def audit_label(model, name) -> str:
    """The label of a key of an audit entry: the model field's verbose name (a reverse relation: the related
    model's plural name), a known detail's label, else the key itself."""
    field = _audit_field(model, name)
    if field is not None:
        if getattr(field, "auto_created", False) and not getattr(field, "concrete", True):
            return capfirst(str(field.related_model._meta.verbose_name_plural))
        verbose = getattr(field, "verbose_name", None)
        if verbose:
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


@register.simple_tag
def audit_display(model, name: str, value, names=None) -> str:
    """An audit value as people read it: choice labels instead of codes, names instead of ids (from `names`,
    {"app.model": {"pk": label}}, see audit_labels; region names always), times in the viewer's zone.
    Copes with any key: reverse relations, fields that no longer exist, lists and dicts."""
    field = _audit_field(model, name)
    if field is None or not getattr(field, "concrete", False):
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
    if label == "core.region" and isinstance(value, (str, int)) and not isinstance(value, bool):
        region = related.objects.filter(pk=value).first()
        return str(region) if region else audit_value(value)
    return audit_value(value)


@register.simple_tag
def audit_detail(model, name: str, value, names=None) -> str:
    """One detail of an audit entry (AuditEntry.extra) as people read it: field names as the model's labels,
    known codes translated, records by their names, choices of the entry's model by their labels."""
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

        return str(dict(ImportJob.Target.choices).get(value, value))
    if name in AUDIT_VALUES or name == "roles":
        return _audit_code(name, value)
    if isinstance(value, dict) and value:
        return "; ".join(f"{audit_label(model, k)}: {audit_value(v)}" for k, v in value.items())
    field = _audit_field(model, name)
    if field is not None and getattr(field, "concrete", False) and getattr(field, "choices", None):
        return audit_display(model, name, value, names)
    return audit_value(value)


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
        if related is not None and isinstance(pair, list):
            for v in pair:
                add(related._meta.label_lower, v)
    extra = entry.extra if isinstance(entry.extra, dict) else {}
    for name, value in extra.items():
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
    "keyaccounts.planitem", "safety.safetycase",
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
def share_percent(value) -> str:
    """A weight stored as a fraction ("0.3000") as pages show weights: "30 %" (up to two places)."""
    try:
        d = (Decimal(str(value)) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize()
    except (InvalidOperation, ValueError, TypeError):
        return "" if value is None else str(value)
    return f"{d:f} %"


@register.filter
def grouped(value) -> str:
    """An amount with thousands separators and two places (1463907 → 1,463,907.00): zh-Hans groups nothing."""
    if value is None or value == "":
        return "—"
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)
