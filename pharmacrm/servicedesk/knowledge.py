"""Knowledge agents answer from: the product catalogue (产品目录: brand and generic name, 国药准字 approval
number, dosage form, strength, indications, contraindications, usage) and answer templates (答复模板)
with placeholders filled in from the ticket when an agent uses one in a reply.

Writes need Cap.MANAGE_KNOWLEDGE (administrators, managers, product experts); everyone who sees tickets
reads. Every write is validated (localised messages naming the field), versioned (optimistic locking:
ConflictError → HTTP 409), written in one transaction and audited. Nothing is deleted: a product or a
template is switched off (`active`), so that tickets and messages that refer to it keep their meaning."""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.ordering import pinyin_sorted
from pharmacrm.core.roles import Cap
from pharmacrm.customers import normalise
from pharmacrm.customers.services import ConflictError

from .models import AnswerTemplate, Product, Ticket, TicketCategory

A = AuditEntry.Action

PRODUCT_FIELDS = (
    "brand_name", "generic_name", "approval_number", "dosage_form", "strength", "indications",
    "contraindications", "usage", "active",
)  # fmt: skip
TEMPLATE_FIELDS = ("name", "category", "language", "body", "active")

# placeholder → what it stands for (shown next to the template editor)
PLACEHOLDERS = {
    "customer": gettext_lazy("the customer: the person, else the institution, else the caller"),
    "ticket": gettext_lazy("the ticket number (TK-2026-000123)"),
    "subject": gettext_lazy("the ticket's subject"),
    "product": gettext_lazy("the product the ticket concerns"),
    "agent": gettext_lazy("your name"),
    "received_at": gettext_lazy("when the request was received (local time)"),
    "batch": gettext_lazy("the batch / lot number"),
}
# {customer}, also typed with a Chinese input method's full-width braces (｛customer｝, NFKC-read inside): such a
# placeholder went out to the customer as it was written
PLACEHOLDER_RE = re.compile(r"[{｛]([^{}｛｝\s]{0,40})[}｝]")


def _placeholder(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


APPROVAL_PREFIX = "国药准字"


# --- products ----------------------------------------------------------------------------------------


def normalise_approval_number(value: str) -> str:
    """“国药准字 h2005 9876” → “国药准字H20059876” (spaces dropped, the letter in capitals; full-width letters
    and digits, as a Chinese input method types them, become ASCII)."""
    value = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value or "")))
    if value.startswith(APPROVAL_PREFIX) and len(value) > len(APPROVAL_PREFIX):
        value = APPROVAL_PREFIX + value[len(APPROVAL_PREFIX)].upper() + value[len(APPROVAL_PREFIX) + 1 :]
    return value


_SEPARATORS = re.compile(r"[\s,、;]+")  # after NFKC: ， and ； are , and ;
_HAN_OR_NOT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def search_terms(q: str) -> list[str]:
    """The words of a catalogue search: separated by spaces or Chinese punctuation (氨氯地平，5mg), and a
    name written straight against its strength (氨氯地平5mg, as a Chinese agent types it) is two words too."""
    out: list[str] = []
    for piece in _SEPARATORS.split(unicodedata.normalize("NFKC", q or "")):
        out += [t for t in _HAN_OR_NOT.findall(piece) if t.strip()]
    return out


def products(user, *, q: str = "", include_inactive: bool = False):
    """Products the user may look up, searched by brand name, generic name, approval number or strength.
    Several words (“氨氯地平 5mg”, separated by spaces, ideographic ones too) must each be found; full-width
    letters and digits, as a Chinese input method types them (“５ｍｇ”), count as ASCII. In pinyin order, as the
    catalogue lists them (安心宁 before 宁咳): the catalogue is short, read whole and sorted here."""
    access.require(user, Cap.VIEW_TICKETS)
    qs = Product.objects.all()
    if not include_inactive:
        qs = qs.filter(active=True)
    return pinyin_sorted(search_products(qs, q).order_by("brand_name", "strength", "id"))


def search_products(qs, q: str):
    """The products of `qs` a search finds (the catalogue page and the API's `q` alike)."""
    q = (q or "").strip()
    if not q:
        return qs
    whole = normalise_approval_number(q)
    if whole.startswith(APPROVAL_PREFIX) or q.startswith(APPROVAL_PREFIX):  # “国药准字 H2005 9876”: one number
        return qs.filter(Q(approval_number__icontains=whole) | Q(approval_number__icontains=q))
    for term in search_terms(q):
        number = normalise_approval_number(term)
        found = (
            Q(brand_name__icontains=term) | Q(generic_name__icontains=term) | Q(strength__icontains=term)
            | Q(approval_number__icontains=number) | Q(approval_number__icontains=term)
        )  # fmt: skip
        simplified = normalise.simplified(term)
        if simplified != term:  # typed in Traditional characters (安心寧): the catalogue's names are Simplified
            found |= Q(brand_name__icontains=simplified) | Q(generic_name__icontains=simplified)
        qs = qs.filter(found)
    return qs


def _clean_text(data: dict, fields: tuple[str, ...]) -> dict:
    out = {}
    for f in fields:
        if f in data:
            v = data[f]
            out[f] = v.strip() if isinstance(v, str) else v
    return out


def _full_clean(obj, exclude=()) -> None:
    try:
        obj.full_clean(exclude=list(exclude))
    except ValidationError as e:
        raise ValidationError(e.message_dict) from None


def _changes(obj, values: dict) -> dict:
    out = {}
    for field, new in values.items():
        old = getattr(obj, field)
        if field == "category":
            old, new = getattr(old, "code", None), getattr(new, "code", None)
        if old != new:
            out[field] = [old, new]
    return out


def _versioned_update(model, obj, values: dict, expected: int) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            done = model.objects.filter(pk=obj.pk, version=expected).update(
                version=F("version") + 1, updated_at=now, **values
            )
    except IntegrityError:
        raise _duplicate(obj) from None  # obj holds the values saved
    if done != 1:
        current = model.objects.filter(pk=obj.pk).values_list("version", flat=True).first()
        raise ConflictError(current or 0)
    obj.version, obj.updated_at = expected + 1, now


def _duplicate(obj) -> ValidationError:
    """The refusal of a product or template the database found a duplicate of (saved at the same moment)."""
    field = "approval_number" if isinstance(obj, Product) else "name"
    return obj.duplicate(field, getattr(obj, field))


def create_product(user, data: dict) -> Product:
    access.require(user, Cap.MANAGE_KNOWLEDGE)
    values = _clean_text(data, PRODUCT_FIELDS)
    values["approval_number"] = normalise_approval_number(values.get("approval_number", ""))
    product = Product(**values)
    _full_clean(product)
    with transaction.atomic():
        try:
            with transaction.atomic():
                product.save(force_insert=True)
        except IntegrityError:
            raise _duplicate(product) from None
        audit.record(A.CREATE, product, user=user, changes={k: [None, getattr(product, k)] for k in values})
    return product


def update_product(user, product: Product, data: dict, *, version: int | None) -> Product:
    """Change the given fields of a product; ConflictError when someone saved it since `version`."""
    access.require(user, Cap.MANAGE_KNOWLEDGE)
    if version is not None and not is_id(version):
        raise ConflictError(product.version)  # a garbled version (not a number) is as stale as an old one
    expected = product.version if version is None else int(version)
    if expected != product.version:
        raise ConflictError(product.version)
    values = _clean_text(data, PRODUCT_FIELDS)
    if "approval_number" in values:
        values["approval_number"] = normalise_approval_number(values["approval_number"])
    changes = _changes(product, values)
    for k, v in values.items():
        setattr(product, k, v)
    _full_clean(product, exclude=[] if "approval_number" in changes else ["approval_number"])
    if not changes:
        return product
    with transaction.atomic():
        _versioned_update(Product, product, values, expected)
        audit.record(A.UPDATE, product, user=user, changes=changes)
    return product


def deactivate_product(user, product: Product, *, version: int | None = None) -> Product:
    return update_product(user, product, {"active": False}, version=version)


# --- answer templates ------------------------------------------------------------------------------


def unknown_placeholders(body: str) -> list[str]:
    """Placeholders in a text that render() does not know (in order, once each)."""
    out: list[str] = []
    for name in map(_placeholder, PLACEHOLDER_RE.findall(body or "")):
        if name not in PLACEHOLDERS and name not in out:
            out.append(name)
    return out


def _check_template(tpl: AnswerTemplate) -> None:
    errors: dict[str, list] = {}
    try:
        tpl.full_clean(exclude=["category"])
    except ValidationError as e:
        errors.update(e.message_dict)
    unknown = unknown_placeholders(tpl.body)
    if unknown:
        errors.setdefault("body", []).append(
            _("Unknown placeholders: %(names)s. Use %(known)s.")
            % {
                "names": ", ".join(f"{{{n}}}" for n in unknown),
                "known": ", ".join(f"{{{n}}}" for n in PLACEHOLDERS),
            }
        )
    if tpl.category_id and not TicketCategory.objects.filter(pk=tpl.category_id).exists():
        errors.setdefault("category", []).append(_("Choose a category."))
    if errors:
        raise ValidationError(errors)


def _template_values(data: dict) -> dict:
    values = _clean_text(data, TEMPLATE_FIELDS)
    if "category" in values and not isinstance(values["category"], TicketCategory | type(None)):
        code = values["category"]
        by_pk = Q(pk=int(code)) if str(code).isdecimal() else Q(pk__in=[])
        values["category"] = TicketCategory.objects.filter(Q(code=code) | by_pk).first() if code else None
        if code and values["category"] is None:
            raise ValidationError({"category": [_("Choose a category.")]})
    if "language" in values and not values["language"]:
        values["language"] = settings.LANGUAGE_CODE
    return values


def create_template(user, data: dict) -> AnswerTemplate:
    access.require(user, Cap.MANAGE_KNOWLEDGE)
    values = _template_values(data)
    tpl = AnswerTemplate(**values)
    _check_template(tpl)
    with transaction.atomic():
        try:
            with transaction.atomic():
                tpl.save(force_insert=True)
        except IntegrityError:
            raise _duplicate(tpl) from None
        audit.record(
            A.CREATE, tpl, user=user, changes={"name": [None, tpl.name], "language": [None, tpl.language]}
        )
    return tpl


def update_template(user, tpl: AnswerTemplate, data: dict, *, version: int | None) -> AnswerTemplate:
    access.require(user, Cap.MANAGE_KNOWLEDGE)
    if version is not None and not is_id(version):
        raise ConflictError(tpl.version)  # a garbled version (not a number) is as stale as an old one
    expected = tpl.version if version is None else int(version)
    if expected != tpl.version:
        raise ConflictError(tpl.version)
    values = _template_values(data)
    changes = _changes(tpl, values)
    for k, v in values.items():
        setattr(tpl, k, v)
    if "body" in changes or "name" in changes or "language" in changes:
        _check_template(tpl)
    if not changes:
        return tpl
    with transaction.atomic():
        _versioned_update(AnswerTemplate, tpl, values, expected)
        audit.record(A.UPDATE, tpl, user=user, changes=changes)
    return tpl


def deactivate_template(user, tpl: AnswerTemplate, *, version: int | None = None) -> AnswerTemplate:
    return update_template(user, tpl, {"active": False}, version=version)


def templates_for(user, ticket: Ticket | None = None):
    """Active templates, those of the ticket's category (and its parents) first, then the general ones."""
    access.require(user, Cap.VIEW_TICKETS)
    qs = AnswerTemplate.objects.filter(active=True).select_related("category")
    items = list(qs.order_by("name"))
    if ticket is None:
        return items
    cats = set()
    c = ticket.category
    while c is not None and c.pk not in cats:
        cats.add(c.pk)
        c = c.parent
    return sorted(
        items, key=lambda t: (0 if t.category_id in cats else 1 if t.category_id is None else 2, t.name)
    )


# --- rendering -------------------------------------------------------------------------------------


def _customer(ticket: Ticket, user) -> str:
    if ticket.person_id:
        return ticket.person.name
    if ticket.institution_id:
        return ticket.institution.name
    if ticket.caller_name:
        if access.personal_data_mode(user) == "plain" or not getattr(user, "is_authenticated", False):
            return ticket.caller_name
        return _("customer")  # the caller's name stays masked for this role
    return _("customer")


# placeholders filled with text a customer or an agent typed (请回电 138 0013 8000): for a user who sees personal data
# masked, filled with its contact details masked, as the ticket page shows it; the message sent puts them back
# (conversation.restore_masks), so the customer still reads the real text
FREE_TEXT_PLACEHOLDERS = ("subject",)


def values_for(ticket: Ticket, user) -> dict[str, str]:
    from pharmacrm.core import personal

    received = timezone.localtime(ticket.received_at).strftime("%Y-%m-%d %H:%M") if ticket.received_at else ""
    values = {
        "customer": _customer(ticket, user),
        "ticket": ticket.number,
        "subject": ticket.subject,
        "product": str(ticket.product) if ticket.product_id else "",
        "agent": str(user) if getattr(user, "is_authenticated", False) else "",
        "received_at": received,
        "batch": ticket.batch_number,
    }
    masked = getattr(user, "is_authenticated", False) and personal.masks_free_text(user)  # as _customer reads it
    return {**values, **{name: personal.free_text(values[name], masked) for name in FREE_TEXT_PLACEHOLDERS}}


def render(template: AnswerTemplate, ticket: Ticket, user) -> str:
    """The template's text for this ticket (see `render_with_gaps`)."""
    return render_with_gaps(template, ticket, user)[0]


def render_with_gaps(template: AnswerTemplate, ticket: Ticket, user) -> tuple[str, list[str]]:
    """The template's text for this ticket: known placeholders filled in, unknown ones left visible, and so are
    the known ones this ticket has nothing for (no product, no batch: “关于{product}的用法用量” rather than a reply
    reading “关于的用法用量” that looks finished), returned beside the text so that the composer can say what is
    left to fill in. The few words it may add itself (“customer”) are in the template's language. An unidentified
    caller's name filled in clear is a read of personal data, audited like the ticket page's and the API's. For a
    user who sees personal data masked the free text filled in (FREE_TEXT_PLACEHOLDERS) is masked — the composer,
    the preview and the API's render never show it in clear; sending the reply puts the masks back
    (conversation.post_message)."""
    with translation.override(template.language or settings.LANGUAGE_CODE):
        values = values_for(ticket, user)
    used: set[str] = set()
    gaps: list[str] = []

    def fill(m: re.Match) -> str:
        name = _placeholder(m.group(1))
        if name in values:
            if not (values[name] or "").strip():
                if name not in gaps:
                    gaps.append(name)
                return m.group(0)
            used.add(name)
            return values[name]
        return m.group(0)

    text = PLACEHOLDER_RE.sub(fill, template.body)
    caller_read = not ticket.person_id and not ticket.institution_id and bool(ticket.caller_name)
    if "customer" in used and caller_read and getattr(user, "is_authenticated", False) and (
        access.personal_data_mode(user) == "plain"
    ):
        audit.record(AuditEntry.Action.READ_PERSONAL, ticket, user=user, fields=["caller_name"],
                     purpose="answer template", template=template.pk)  # fmt: skip
    return text, gaps
