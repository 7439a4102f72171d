"""Editing a ticket's details after intake: subject, description, category, product, batch number, the
safety-relevant flag, the customer's language (what the desk writes to them in), and who it is for — the customer (institution, person) and the unidentified caller's
name, phone and reply e-mail (personal data: the history and the audit trail say that they changed, never
the values). Only what changed is written; two agents saving the same ticket → the second
gets a ConflictError (HTTP 409) and the page keeps what they typed.

A new category or customer chooses the SLA policy again and rebuilds the clocks from the ticket's history;
neither changes the priority or complexity (an agent changes those deliberately, with a reason) — except
that a caller identified as a VIP or key account gets the one-step boost intake would have given, and a customer
corrected to one without it takes back the system's boost (not a priority a person set since). A resolved
or closed ticket keeps its policy, priority and clocks: its details are corrected for the record only."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from pharmacrm.core import access, audit, builtin, crypto, personal
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers_services
from pharmacrm.customers.choices import PreferredLanguage
from pharmacrm.customers.models import Institution, Person

from . import services
from .choices import OPEN_STATUSES, EventKind, MessageKind
from .models import Product, Ticket, TicketCategory, TicketEvent

A = AuditEntry.Action
CUSTOMER = ("institution", "person")
PERSONAL = ("caller_name", "caller_phone", "reply_email")
EDITABLE = ("subject", "description", "category", "product", "batch_number", "safety_relevant", *CUSTOMER, *PERSONAL,
            "language")  # fmt: skip
EDITABLE_TEXTS = ("subject", "description")  # free text a masked editor is shown masked (personal.FREE_TEXT_OF)
RELATED = ("category", "product", *CUSTOMER)  # stored as <field>_id
ALIASES = {"batch": "batch_number"}
MAX_DESCRIPTION = 20_000
SHOWN = 200  # characters of a long text kept in the history event


def _category(value) -> TicketCategory:
    if isinstance(value, TicketCategory):
        return value
    category = TicketCategory.objects.filter(code=str(value or ""), active=True).first()
    if category is None and str(value or "").isdecimal():
        category = TicketCategory.objects.filter(pk=int(value), active=True).first()
    if category is None:
        raise ValidationError({"category": [_("Choose a category.")]})
    return category


def _product(value, current_id) -> Product | None:
    if value in (None, ""):
        return None
    product = (
        value
        if isinstance(value, Product)
        else Product.objects.filter(pk=value if str(value).isdecimal() else None).first()
    )
    if product is None or (not product.active and product.pk != current_id):
        raise ValidationError({"product": [_("Choose a product from the catalogue.")]})
    return product


def _customer(user, model, value, field: str):
    """The institution or person chosen (an object or an id), if the user may see it; None to unlink."""
    if value in (None, ""):
        return None
    obj = value if isinstance(value, model) else model.objects.filter(pk=value if str(value).isdecimal() else None).first()
    if obj is None or obj.merged_into_id is not None or (user is not None and not access.can_see(user, obj)):
        raise ValidationError({field: [_("Choose a customer you may see.")]})
    return obj


def _personal(field: str, value) -> str:
    value = (value or "").strip()
    if field == "caller_name" and (error := services.caller_name_error(value)) is not None:
        raise ValidationError({field: [error]})
    if field == "caller_phone" and value:
        normalise.validate_any_phone(value)  # the same rule as at intake (ValidationError names no field)
    if field == "reply_email" and value:
        from pharmacrm.core.addresses import validate_address

        try:
            validate_address(value)
        except ValidationError:
            raise ValidationError({field: [_("Enter a valid e-mail address.")]}) from None
    return value


def _address_key(value: str) -> str:
    return normalise.email(value or "")


def company_address(address: str) -> bool:
    """Whether `address` is one of the company's own: a user's account (an employee, any), the mailboxes' (the
    addresses the service desk and the notifications send from, the service mailbox's account when it is an
    address) or any address at those mailboxes' domains."""
    import email.utils

    from django.conf import settings

    from pharmacrm.core.models import User

    key = _address_key(address)
    if not key:
        return False
    configured = (getattr(settings, name, "") or "" for name in (
        "SERVICEDESK_MAIL_FROM", "NOTIFY_MAIL_FROM", "DEFAULT_FROM_EMAIL", "SERVER_EMAIL", "SERVICEDESK_IMAP_USER"))  # fmt: skip
    mailboxes = {_address_key(email.utils.parseaddr(value)[1]) for value in configured} - {""}
    domains = {m.rpartition("@")[2] for m in mailboxes if "@" in m}
    if key in mailboxes or key.rpartition("@")[2] in domains:
        return True
    return any(_address_key(e) == key for e in User.objects.exclude(email="").values_list("email", flat=True))


def address_on_record(ticket: Ticket, address: str, people=()) -> bool:
    """Whether `address` is already known for the ticket's customer: the e-mail of its person (or of the person
    named in the same change), or an address one of the ticket's mails came from."""
    key = _address_key(address)
    known = [p.email for p in people if p is not None]
    known += [m.sender for m in ticket.messages.filter(kind=MessageKind.INBOUND).only("sender").order_by("id")[:200]]
    return bool(key) and any(_address_key(k) == key for k in known)


def check_reply_address(user, ticket: Ticket, address: str, reason: str, people=()) -> bool:
    """A new reply address set by a user who sees personal data masked (an agent's blind edit): every reply's
    e-mail carries the ticket's subject in clear ([TK-…] subject) to it. One of the company's own addresses is
    refused; one not on record for the customer (address_on_record) needs a reason, kept in the history and the
    audit trail, as a reveal's. Returns whether the address is such a new one (to be audited as such)."""
    if not address or not personal.masks_free_text(user):
        return False
    if company_address(address):
        raise ValidationError({"reply_email": [_(
            "Replies to the customer cannot go to an address of the company's own staff or mailboxes."
        )]})  # fmt: skip
    if address_on_record(ticket, address, people):
        return False
    if not reason:
        raise ValidationError({"reason": [_(
            "This e-mail address is not on record for the customer, and the replies sent there carry the ticket's "
            "subject in clear: say why replies are to go there."
        )]})  # fmt: skip
    return True


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on", "yes")
    return bool(value)


def clean_changes(ticket: Ticket, changes: dict, user=None) -> dict:
    """The submitted values, checked and converted (objects for category/product/institution/person);
    ValidationError naming each bad field. A customer must be one `user` may see."""
    errors: dict[str, list[str]] = {}
    out: dict = {}
    for key, value in changes.items():
        field = ALIASES.get(key, key)
        if field not in EDITABLE:
            continue
        try:
            if field == "subject":
                value = (value or "").strip()
                if not value:
                    raise ValidationError({"subject": [_("Describe the request in a few words.")]})
                if len(value) > 200:
                    raise ValidationError({"subject": [_("At most 200 characters.")]})
            elif field == "description":
                # a browser sends a textarea's line breaks as CRLF: the same text, not a change
                value = (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()
                stored = (ticket.description or "").replace("\r\n", "\n").replace("\r", "\n").strip()
                # a customer's long mail is the description as it came: the form sends it back unchanged with
                # every other edit (the category first of all), which must not be refused for its length
                if len(value) > MAX_DESCRIPTION and value != stored:
                    raise ValidationError(
                        {"description": [_("At most %(max)d characters.") % {"max": MAX_DESCRIPTION}]}
                    )
            elif field == "batch_number":
                value = (value or "").strip()
                if len(value) > 40:
                    raise ValidationError({"batch_number": [_("At most 40 characters.")]})
            elif field == "category":
                value = _category(value)
            elif field == "product":
                value = _product(value, ticket.product_id)
            elif field == "safety_relevant":
                value = _bool(value)
            elif field == "language":
                value = str(value or "").strip().lower()
                if value not in PreferredLanguage.values:
                    raise ValidationError({"language": [_("Choose the customer's language: Simplified Chinese, "
                                                          "English or Traditional Chinese.")]})  # fmt: skip
            elif field == "institution":
                value = _customer(user, Institution, value, field)
            elif field == "person":
                value = _customer(user, Person, value, field)
            elif field in PERSONAL:
                value = _personal(field, value)
        except ValidationError as e:
            for k, msgs in (e.message_dict if hasattr(e, "error_dict") else {field: e.messages}).items():
                errors.setdefault(k, []).extend(msgs)
            continue
        out[field] = value
    if errors:
        raise ValidationError(errors)
    return out


CHANGED = "******"  # a personal value in the ticket's history: that there was one, never what it was


def _digest(ticket: Ticket, field: str, value: str) -> str:
    """A personal value in the audit trail, as customers' are: a digest keyed to the ticket and the field,
    which shows that it changed without revealing it, nor letting a guess be confirmed elsewhere."""
    if not value:
        return ""
    if field == "caller_phone":
        value = normalise.phone(value)
    return f"******#{crypto.blind_index(f'servicedesk.ticket:{ticket.pk}:{field}:{value}', 'audit')[:8]}"


def _short(value) -> object:
    if isinstance(value, str) and len(value) > SHOWN:
        return value[:SHOWN] + "…"
    return value


UNBOOST_REASON = gettext_noop("No longer a VIP or key-account customer: the priority boost is taken back.")


def _before_boost(ticket: Ticket) -> str | None:
    """The priority the system's VIP / key-account boost raised the ticket from, when that boost still stands;
    None when there was none, or a person changed the priority by hand since (theirs stays)."""
    events = list(TicketEvent.objects.filter(ticket=ticket, kind=EventKind.PRIORITY).order_by("at", "id"))
    last = events[-1] if events else None
    if last is None or not (last.data or {}).get("boost"):
        return None
    was, now = (last.data.get("from") or [None])[0], (last.data.get("to") or [None])[0]
    return was if now == ticket.priority else None


def _set_by_hand(ticket: Ticket) -> bool:
    """Whether a person changed the ticket's priority on the ticket since its last boost (theirs is not boosted
    over). A priority chosen at intake is not: the boost applies to it, as intake would have given it."""
    last = TicketEvent.objects.filter(ticket=ticket, kind=EventKind.PRIORITY).order_by("at", "id").last()
    return last is not None and bool((last.data or {}).get("manual"))


def rerate_boost(ticket: Ticket, *, user=None) -> str | None:
    """Give or take back the system's one-step boost of an open ticket whose customer's standing changed without the
    ticket changing (a loyalty member's level, or its membership, suspended or ended: loyalty.services) — as intake,
    or a customer corrected on the ticket, would decide it now: boosted once at most, never over a priority a person
    set by hand, and taken back only while the boost still stands (a priority a person changed since stays). Made
    as any priority change is (services.set_priority: policy, history by the system, clocks, audit by `user`, the
    system when None). The ticket is locked and read again. Returns "boost", "unboost" or None (nothing changed)."""
    from . import routing

    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    if ticket.status not in OPEN_STATUSES:
        return None  # the deadlines it met or missed are history (as services.change_priority refuses)
    reason = routing.boost_reason(ticket, routing.key_account_team(ticket) is not None)
    if not ticket.boosted and reason and not _set_by_hand(ticket):
        raised = routing.BOOST.get(ticket.priority)
        if raised is None:
            return None  # high or urgent already: never above high by the boost alone
        mark = routing.boost_mark(reason)
        services.set_priority(ticket, raised, None, boosted=True, actor=services.SYSTEM, user=user or services.SYSTEM,
                              reason=mark.pop("reason"), mark=mark)  # fmt: skip
        return "boost"
    if ticket.boosted and not reason:
        restored = _before_boost(ticket)
        if restored:
            services.set_priority(ticket, restored, None, boosted=False, actor=services.SYSTEM,
                                  user=user or services.SYSTEM, reason=_(UNBOOST_REASON), mark={"unboost": True})  # fmt: skip
            return "unboost"
    return None


def rerate_customer_boosts(institution_ids, *, user=None) -> int:
    """`rerate_boost` for every open ticket of these institutions — filed under them, under one of their departments,
    or for one of their people — when their standing changed. Inside the caller's transaction; returns how many
    tickets changed priority."""
    ids = [pk for pk in institution_ids if pk]
    if not ids:
        return 0
    tickets = (
        Ticket.objects.filter(status__in=OPEN_STATUSES)
        .filter(Q(institution_id__in=ids) | Q(institution__parent_id__in=ids) | Q(person__institution_id__in=ids))
        .order_by("pk")
    )
    return sum(1 for ticket in tickets if rerate_boost(ticket, user=user))


def edit_ticket(user, ticket: Ticket, changes: dict, *, version: int | None, reason: str = "") -> Ticket:
    """Apply the changed details; returns the ticket (unchanged, and its version not bumped, when nothing
    differs). ConflictError when someone else saved the ticket since `version` was read."""
    services.require(user, Cap.HANDLE_TICKETS)
    services._check_version(ticket, version)
    # an editor shown the subject and description with their contact details masked sends the masks back (the edit
    # form, a GET then PATCH): each is put back as stored, never saved in place of the real number or address
    changes = personal.restore_free_text(user, changes, ticket, EDITABLE_TEXTS)
    values = clean_changes(ticket, changes, user)
    if values.get("person") is not None and "institution" not in values:
        values["institution"] = values["person"].institution  # as at intake: the person's institution
    diff: dict[str, list] = {}
    for field, new in values.items():
        old = getattr(ticket, field)
        if field in RELATED:
            if (old.pk if old else None) != (new.pk if new else None):
                diff[field] = [old, new]
        elif old != new:
            diff[field] = [old, new]
    after = {f: diff[f][1] if f in diff else getattr(ticket, f) for f in (*CUSTOMER, "caller_name", "caller_phone")}
    if not any(after.values()):
        raise ValidationError({"person": [_("Name the customer, or the caller's name or phone number.")]})
    if "category" in diff and diff["category"][1].safety_relevant and not ticket.safety_relevant:
        # a safety category makes the ticket safety-relevant, as at intake: also when the edit form sent its box as
        # the ticket had it (unticked), which is what the page always does when only the category is changed
        diff["safety_relevant"] = [False, True]
    if not diff:
        return ticket
    reason = audit.cut((reason or "").strip(), 500)
    new_address = "reply_email" in diff and check_reply_address(
        user, ticket, diff["reply_email"][1], reason, (ticket.person, values.get("person"))
    )
    now = timezone.now()
    with transaction.atomic():
        expected = ticket.version
        fields = []
        for field, (_old, new) in diff.items():
            setattr(ticket, field, new)
            fields.append(f"{field}_id" if field in RELATED else field)
        if diff.keys() & set(CUSTOMER):
            # a merge of the customer chosen under way: filed under the merged record, the ticket would be shown
            # nowhere (the merge finishes first and the change is refused, or a later merge moves the ticket)
            chosen = {f: diff[f][1].pk for f in CUSTOMER if f in diff and diff[f][1]}
            customers_services.hold_unmerged(**chosen)
        if "caller_phone" in diff:
            ticket.refresh_derived()
            fields.append("caller_phone_bidx")
        boosted_from = unboosted_from = None
        # a resolved or closed ticket's details are corrected for the record: its priority, policy and the
        # deadlines it met or missed stay as they were (services.change_priority refuses the same)
        still_open = ticket.status in OPEN_STATUSES
        if diff.keys() & set(CUSTOMER) and still_open:
            from . import routing

            key_account = routing.key_account_team(ticket) is not None
            if not ticket.boosted:
                # a caller identified as a VIP or key account: the boost intake would have given, unless a
                # person chose this priority (the customer's tier does not overrule them)
                boosted_from = None if _set_by_hand(ticket) else routing.boost(ticket, key_account=key_account)
                if boosted_from:
                    fields += ["priority", "boosted"]
            elif not routing.boost_reason(ticket, key_account):
                # the customer corrected to one without the boost: the system's boost is taken back
                restored = _before_boost(ticket)
                if restored:
                    unboosted_from, ticket.priority, ticket.boosted = ticket.priority, restored, False
                    fields += ["priority", "boosted"]
        repolicy = still_open and bool(diff.keys() & {"category", *CUSTOMER})
        if repolicy:
            ticket.policy = services.select_policy(ticket)
            fields.append("policy_id")
        services._save(ticket, fields, expected)
        if "category" in diff:
            old, new = diff["category"]
            services._event(ticket, EventKind.CATEGORY, user, at=now, data={
                "from": old.code, "to": new.code, "from_name": old.name, "to_name": new.name,
                **({"reason": reason} if reason else {}),
            })  # fmt: skip
        if "product" in diff:
            old, new = diff["product"]
            services._event(ticket, EventKind.PRODUCT, user, at=now, data={
                "from": old.pk if old else None, "to": new.pk if new else None,
                "from_name": str(old) if old else "", "to_name": str(new) if new else "",
                **({"reason": reason} if reason else {}),
            })  # fmt: skip
        for field in CUSTOMER:
            if field in diff:
                old, new = diff[field]
                services._event(ticket, EventKind.EDITED, user, at=now, data={
                    # codes, not names: a person's name is personal data, masked for some readers of the history
                    "fields": {field: [old.code if old else "", new.code if new else ""]},
                    **({"reason": reason} if reason else {}),
                })  # fmt: skip
        if boosted_from:
            services._event(ticket, EventKind.PRIORITY, services.SYSTEM, at=now, data={
                "from": [boosted_from, ticket.complexity], "to": [ticket.priority, ticket.complexity],
                **routing.boost_mark(ticket.boost_reason),
            })  # fmt: skip
        if unboosted_from:
            services._event(ticket, EventKind.PRIORITY, services.SYSTEM, at=now, data={
                "from": [unboosted_from, ticket.complexity], "to": [ticket.priority, ticket.complexity],
                "reason": _(UNBOOST_REASON), "unboost": True,
            })  # fmt: skip
        plain = {
            f: ([CHANGED if a else "", CHANGED if b else ""] if f in PERSONAL else [_short(a), _short(b)])
            for f, (a, b) in diff.items() if f not in RELATED
        }  # fmt: skip
        if plain:
            services._event(ticket, EventKind.EDITED, user, at=now,
                            data={"fields": plain, **({"reason": reason} if reason else {})})  # fmt: skip
        if repolicy:
            services.rebuild_clocks(ticket, now=now)
        audit_changes = {
            f: ([a.code if a else None, b.code if b else None] if f == "category"
                else [a.pk if a else None, b.pk if b else None] if f in RELATED
                else [_digest(ticket, f, a), _digest(ticket, f, b)] if f in PERSONAL else [_short(a), _short(b)])
            for f, (a, b) in diff.items()
        }  # fmt: skip
        if boosted_from or unboosted_from:
            audit_changes["priority"] = [boosted_from or unboosted_from, ticket.priority]
        audit.record(
            A.UPDATE, ticket, user=user, changes=audit_changes, **({"reason": reason} if reason else {}),
            **({"new_reply_address": True} if new_address else {}),
        )
        if diff.keys() & {"subject", "description", "safety_relevant", "category"}:
            from pharmacrm.safety import net

            net.screen_ticket(ticket)
    return ticket


FIELD_LABELS = {
    "subject": gettext_lazy("Subject"),
    "description": gettext_lazy("Description"),
    "batch_number": gettext_lazy("Batch / lot number"),
    "safety_relevant": gettext_lazy("Safety-relevant"),
    "institution": gettext_lazy("Institution"),
    "person": gettext_lazy("Person"),
    "caller_name": gettext_lazy("Caller's name"),
    "caller_phone": gettext_lazy("Caller's phone"),
    "reply_email": gettext_lazy("Customer's e-mail"),
    "language": gettext_lazy("Customer's language"),
}


def _shown(value) -> str:
    if value == CHANGED:
        return str(_("(personal data)"))
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    return str(value) if value not in (None, "") else "—"


def event_details(e) -> list[tuple[str, str]]:
    """(label, text) lines for the ticket history of the events this module and the conversation write
    (views._event_details adds them)."""
    data = e.data or {}
    out: list[tuple[str, str]] = []
    if e.kind == EventKind.CATEGORY:
        # the names as they were then; a shipped name in the reader's language
        names = [_shown(builtin.shown(data.get(k) or "")) for k in ("from_name", "to_name")]
        out.append((str(_("Category")), f"{names[0]} → {names[1]}"))
    elif e.kind == EventKind.PRODUCT:
        out.append((str(_("Product")), f"{_shown(data.get('from_name'))} → {_shown(data.get('to_name'))}"))
    elif e.kind == EventKind.EDITED:
        for field, pair in (data.get("fields") or {}).items():
            old, new = (list(pair) + [None, None])[:2]
            if field == "language":  # stored as codes, read in the reader's language
                old, new = (str(PreferredLanguage(v).label) if v in PreferredLanguage.values else v for v in (old, new))
            out.append((str(FIELD_LABELS.get(field, field)), f"{_shown(old)} → {_shown(new)}"))
    elif e.kind == EventKind.ATTACHMENT and data.get("name"):
        out.append((str(_("File")), str(data["name"])))
    return out
