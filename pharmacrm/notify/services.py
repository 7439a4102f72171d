"""Notifications: `send` puts a message in users' bells (and queues its e-mail), `emit` queues an event for
the outbound webhooks. Both write in the caller's transaction; the worker delivers after the commit
(tasks.py), so a rolled-back change never notifies anyone and a committed one is never forgotten.

Texts must not carry customers' personal data (names, phones, e-mail addresses): pass ticket numbers and
subjects, and a link to the page where the reader's own access rights apply."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import re
import secrets
import urllib.parse
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit
from pharmacrm.core.deferred import freeze, render_in, thaw
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.normalise import mask_contacts, mask_contacts_cut
from pharmacrm.customers.services import ConflictError

from .models import Delivery, Notification, WebhookEndpoint

log = logging.getLogger(__name__)
A = AuditEntry.Action
KIND = re.compile(r"[-a-z0-9_.]{1,50}")
EVENT = re.compile(r"[-a-z0-9_.*]{1,64}")
ENDPOINT_FIELDS = ("name", "url", "format", "events", "active")
URL_MAX = 500  # an endpoint's address, as the form and the API take it


def _no_nul(spec: Any) -> Any:
    if isinstance(spec, str):
        return spec.replace("\x00", "")
    if isinstance(spec, dict):
        return {k: _no_nul(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_no_nul(v) for v in spec]
    return spec


def _frozen(value: Any, limit: int | None = None) -> tuple[Any, str]:
    """A text (a string, a lazy translation or a `Message`) as its template and arguments, and rendered in
    the product's language for the stored columns. Each reader later reads the template in their own
    language (`Notification.shown_title`, the e-mails)."""
    spec = _no_nul(freeze(value))
    text = render_in(None, spec).replace("\x00", "")
    return spec, (text[:limit] if limit else text)


def _language(user) -> str:
    return getattr(user, "language", "") or settings.LANGUAGE_CODE


def _object_label(obj: Any) -> tuple[str, str]:
    if obj is None:
        return "", ""
    if isinstance(obj, tuple):
        return str(obj[0])[:64], str(obj[1])[:64]
    return obj._meta.label_lower, str(obj.pk)


def _absolute(url: str) -> str:
    if not url or re.match(r"^[a-z]+://", url):
        return url
    return settings.PUBLIC_BASE_URL.rstrip("/") + "/" + url.lstrip("/")


def _queue(delivery_ids: list[int]) -> None:
    """Hand the deliveries to the worker once the caller's transaction commits. If the queue cannot take
    them, the every-minute sweep finds them anyway (they are due now)."""

    def push():
        from . import tasks

        try:
            if len(delivery_ids) > 1:
                tasks.dispatch_many(list(delivery_ids))
            else:
                tasks.dispatch(delivery_ids[0])
        except Exception:  # noqa: BLE001 — the sweep picks it up
            log.exception("could not queue deliveries %s; the sweep will send them", delivery_ids[:10])

    if delivery_ids:
        transaction.on_commit(push)


def _users(recipients) -> list:
    seen, out = set(), []
    for user in recipients or ():
        if user is None or user.pk in seen or not getattr(user, "is_active", False):
            continue
        seen.add(user.pk)
        out.append(user)
    return out


MAIL_LINK_SALT = "pharmacrm.notify.mail-link"


def mail_link(note_pk: int, url: str) -> str:
    """The link of a notification's e-mail: it opens `url` and marks the notification read when its own
    recipient follows it (views.open_from_mail). Signed, so that nobody makes one that leads elsewhere; it
    carries the notification's id and the page, nothing else (a forwarded mail tells its reader no more)."""
    token = signing.dumps({"n": int(note_pk), "u": url}, salt=MAIL_LINK_SALT, compress=True)
    return reverse("notify:mail-open", args=[token])


def read_mail_link(token: str) -> tuple[int, str] | None:
    """(notification id, page) of a mail link's token; None for a forged or damaged one."""
    try:
        data = signing.loads(str(token or "")[:1000], salt=MAIL_LINK_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("n"), int) or not isinstance(data.get("u"), str):
        return None
    return data["n"], data["u"]


def email_text(title: Any, body: Any, url: str, language: str | None = None, note: int | None = None,
               ) -> tuple[str, str]:  # fmt: skip
    """Subject and text of a notification's e-mail, in the recipient's language (`language`; the product's
    when None). `title` and `body` are frozen texts (`core.deferred.freeze`) or plain strings. With `note`
    (the notification's id) the link goes through `mail_link`: following it marks the notification read."""
    with translation.override(language or settings.LANGUAGE_CODE):
        # a ticket's subject as a customer typed it (请回电 138 0013 8000) leaves the company with the mail: masked
        # (masked before it is cut at 200 characters: a number cut mid-way, in a title stored cut too, masked as well)
        title_text, body_text = mask_contacts_cut(thaw(title), 200).strip(), mask_contacts(thaw(body))
        subject = _("[PharmaCRM] %(title)s") % {"title": title_text}
        parts = [body_text] if body_text else []
        if url:
            link = mail_link(note, url) if note and url.startswith("/") else url
            parts.append(_("Open: %(url)s") % {"url": _absolute(link)})
        parts.append(
            _("You receive this message because you are a user of PharmaCRM. Your notifications: %(url)s")
            % {"url": _absolute("/notifications/")}
        )
        return subject.replace("\n", " ").replace("\r", " ")[:250], "\n\n".join(parts)


def _mail_payload(user, title_spec: Any, body_spec: Any, url: str, note: int | None) -> dict:
    """The e-mail of one notification for its recipient: in their language, with the link that marks that
    notification read."""
    subject, text = email_text(title_spec, body_spec, url, _language(user), note)
    return {"subject": subject, "body": text}


def send(
    recipients: Iterable,
    *,
    kind: str,
    title: Any,
    body: Any = "",
    url: str = "",
    obj: Any = None,
    email: bool = True,
) -> list[Notification]:
    """Put a notification in each recipient's bell and, when `email` is true, e-mail it to those who have
    an address, each in their own language. `title` and `body` are strings, lazy translations or
    `core.deferred.Message`s (a translatable template and its arguments): pass those, not a string
    translated now, so that every reader reads their language. Recipients are users (duplicates and
    inactive users are skipped). `obj` is a model instance or a (type, id) pair the notification is about.
    Call inside your transaction."""
    if not KIND.fullmatch(kind or ""):
        raise ValidationError(
            {"kind": _("A notification kind is a short code of lower-case letters, digits, dots and dashes.")}
        )
    title_spec, title_text = _frozen(title, 200)
    title_text = title_text.strip()
    if not title_text:
        raise ValidationError({"title": _("A notification needs a title.")})
    body_spec, body_text = _frozen(body)
    url_text = str(url or "").replace("\x00", "")[:500]
    object_type, object_id = _object_label(obj)
    users = _users(recipients)
    if not users:
        return []
    now = timezone.now()
    spec = {"title": title_spec, "body": body_spec}
    with transaction.atomic():
        notes = Notification.objects.bulk_create(
            [
                Notification(
                    recipient=u,
                    kind=kind,
                    title=title_text,
                    body=body_text,
                    url=url_text,
                    object_type=object_type,
                    object_id=object_id,
                    created_at=now,
                    spec=spec,
                )  # fmt: skip
                for u in users
            ]
        )
        deliveries = []
        if email:
            for user, note in zip(users, notes, strict=True):
                if user.email:
                    deliveries.append(
                        Delivery.objects.create(
                            notification=note,
                            channel=Delivery.Channel.EMAIL,
                            email=user.email,
                            event=kind,
                            payload=_mail_payload(user, title_spec, body_spec, url_text, note.pk),
                            next_attempt_at=now,
                            created_at=now,
                        )  # fmt: skip
                    )
        _queue([d.pk for d in deliveries])
    return notes


def send_many(items: Iterable[dict]) -> int:
    """`send` for many notifications at once (the worker's escalation batch): each item holds send's
    arguments (recipients, kind, title, body, url, obj, email). Two inserts for the whole batch — the
    notifications, then the e-mail deliveries — and one queue entry. Returns how many notifications."""
    now = timezone.now()
    notes: list[Notification] = []
    mails: list[tuple[int, str, str, tuple]] = []  # (index of the note, address, kind, what the e-mail says)
    for item in items:
        kind = item["kind"]
        title_spec, title = _frozen(item["title"], 200)
        title = title.strip()
        if not KIND.fullmatch(kind or "") or not title:
            raise ValidationError({"kind": _("A notification needs a kind and a title.")})
        body_spec, body = _frozen(item.get("body", ""))
        url = str(item.get("url", "") or "").replace("\x00", "")[:500]
        object_type, object_id = _object_label(item.get("obj"))
        spec = {"title": title_spec, "body": body_spec}
        for user in _users(item["recipients"]):
            notes.append(Notification(recipient=user, kind=kind, title=title, body=body, url=url, spec=spec,
                                      object_type=object_type, object_id=object_id, created_at=now))  # fmt: skip
            if item.get("email", True) and user.email:
                mails.append((len(notes) - 1, user.email, kind, (user, title_spec, body_spec, url)))
    if not notes:
        return 0
    with transaction.atomic():
        notes = Notification.objects.bulk_create(notes, batch_size=500)
        deliveries = Delivery.objects.bulk_create(
            [Delivery(notification=notes[i], channel=Delivery.Channel.EMAIL, email=address, event=kind,
                      payload=_mail_payload(*text, notes[i].pk), next_attempt_at=now, created_at=now)
             for i, address, kind, text in mails],
            batch_size=500,
        )  # fmt: skip
        ids = [d.pk for d in deliveries if d.pk is not None]
        if len(ids) < len(deliveries):  # a database that returns no ids from a bulk insert: the sweep sends them
            ids = []
        _queue(ids)
    return len(notes)


def _jsonable(payload: dict) -> dict:
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False))


CHAT_BOTS = (WebhookEndpoint.Format.WECOM, WebhookEndpoint.Format.DINGTALK)


def emit(event: str, payload: dict, *, news: bool = True) -> int:
    """Queue `event` for every active webhook endpoint subscribed to it; returns how many deliveries were
    queued. The body sent is {"event", "at", "data": payload}. `news=False`: history found now (a breach recorded
    late), for the systems that keep the record — not for the WeCom and DingTalk group bots, whose group reads
    every message as having just happened. Call inside your transaction."""
    if not EVENT.fullmatch(event or ""):
        raise ValidationError(
            {"event": _("An event name is a short code of lower-case letters, digits, dots and dashes.")}
        )
    endpoints = [
        e for e in WebhookEndpoint.objects.filter(active=True) if e.wants(event) and (news or e.format not in CHAT_BOTS)
    ]
    if not endpoints:
        return 0
    now = timezone.now()
    doc = {"event": event, "at": now.isoformat(), "data": _jsonable(payload or {})}
    with transaction.atomic():
        ids = [
            Delivery.objects.create(
                channel=Delivery.Channel.WEBHOOK,
                endpoint=e,
                event=event,
                payload=doc,
                next_attempt_at=now,
                created_at=now,
            ).pk
            for e in endpoints
        ]
        _queue(ids)
    return len(ids)


def unread_count(user) -> int:
    if user is None or not user.is_authenticated:
        return 0
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def mark_read(user, ids: Iterable[int] | str | None = None, *, up_to: int | None = None) -> int:
    """Mark the user's own notifications read: the given ids, or all of them (ids None or "all") — with
    `up_to`, all of them up to that id: those the reader was shown, not one that arrived since."""
    qs = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None and ids != "all":
        qs = qs.filter(pk__in=[int(i) for i in ids])
    if up_to is not None:
        qs = qs.filter(pk__lte=int(up_to))
    return qs.update(read_at=timezone.now())


def may_open(user, note: Notification) -> bool:
    """Whether the user may still open the ticket, safety case, triage flag or improvement action a notification
    is about (the scope of those pages: a ticket handed to someone outside their territory since, a case or a
    flag after leaving the PV role, an action given to someone else). Other kinds of objects: True (their page
    decides)."""
    return note.pk not in closed_to(user, [note])


def closed_to(user, notes: Iterable[Notification]) -> set[int]:
    """The ids of those of `notes` whose ticket, safety case, triage flag or improvement action the user may no
    longer open: one query per kind of object, not one per notification (a page of the bell)."""
    wanted: dict[str, dict[int, list[int]]] = {}
    for note in notes:
        if note.object_id.isdecimal() and len(note.object_id) <= 18:
            wanted.setdefault(note.object_type, {}).setdefault(int(note.object_id), []).append(note.pk)
    closed: set[int] = set()

    def shut(kind: str, open_ids) -> None:
        for pk, note_ids in wanted.get(kind, {}).items():
            if pk not in open_ids:
                closed.update(note_ids)

    if "servicedesk.ticket" in wanted:
        shut("servicedesk.ticket",
             set(access.tickets_for(user).filter(pk__in=list(wanted["servicedesk.ticket"])).values_list("pk", flat=True)))  # fmt: skip
    if "safety.safetycase" in wanted:
        from pharmacrm.safety.models import SafetyCase

        cases = SafetyCase.objects.select_related("source_ticket", "source_interaction").filter(
            pk__in=list(wanted["safety.safetycase"])
        )
        shut("safety.safetycase", {c.pk for c in cases if access.case_status_visible(user, c)})
    if "safety.flag" in wanted and not (access.can(user, Cap.HANDLE_SAFETY) or access.can(user, Cap.OVERSEE_SAFETY)):
        shut("safety.flag", set())  # the triage page: PV and those who oversee it
    if "servicedesk.improvementaction" in wanted:  # an action given to someone else since
        from pharmacrm.servicedesk import revisit

        wanted_actions = list(wanted["servicedesk.improvementaction"])
        shut("servicedesk.improvementaction",
             set(revisit.actions_for(user).filter(pk__in=wanted_actions).values_list("pk", flat=True)))  # fmt: skip
    return closed


def shown_to(user, notes: Iterable[Notification]) -> list[Notification]:
    """`notes` (the reader's own) made ready to show to `user`: their titles and texts with the contact details in
    them masked when the reader sees personal data masked (Notification.masked), decided once for them all."""
    from pharmacrm.core import personal

    notes = list(notes)
    masked = personal.masks_free_text(user)
    for note in notes:
        note.masked = masked
    return notes


def withheld(user, notes: Iterable[Notification]) -> set[int]:
    """The ids of those of `notes` whose text the reader may no longer read: what they are about is out of
    their reach now, or it is a flag's notice with the customer's words (which may name the patient) and the
    reader no longer handles safety cases. The title stays; the text was written for who they were then."""
    notes = list(notes)
    hidden = closed_to(user, notes)
    if not access.can_see_case_identity(user):
        hidden.update(n.pk for n in notes if n.object_type == "safety.flag" and n.body)
    return hidden


# --- administration: deliveries --------------------------------------------------------------------


def _in_flight(delivery: Delivery, now: dt.datetime) -> bool:
    """A worker's claim counted an attempt whose outcome is not in the log yet, and its lease runs."""
    logged = delivery.log[-1].get("attempt", 0) if delivery.log and isinstance(delivery.log[-1], dict) else 0
    return (
        delivery.status in (Delivery.Status.PENDING, Delivery.Status.FAILED) and delivery.attempts > (logged or 0)
        and delivery.next_attempt_at is not None and delivery.next_attempt_at > now
    )  # fmt: skip


def retry(user, delivery: Delivery) -> Delivery:
    """Send a failed (or given-up) delivery again now; audited.

    A webhook delivery held behind an earlier one to the same endpoint that failed (tasks.failing_ahead: the
    endpoint is taken to be down, and the events go out in their order) cannot go before it: sent again "now" on
    its own, the worker held it back at once. Its retry tries the endpoint now with that earlier delivery, and
    brings this one (with those held between them) right after it: if the endpoint answers, they go out in their
    order; if not, they wait behind it again. The delivery returned then carries `behind` (the earlier one)."""
    from .tasks import failing_ahead

    access.require(user, Cap.MANAGE_SERVICE)
    if delivery.status == Delivery.Status.SENT:
        raise ValidationError({"status": _("This delivery was sent already.")})
    before = {"status": delivery.status, "next_attempt_at": delivery.next_attempt_at}
    now = timezone.now()
    if _in_flight(delivery, now):
        # a worker claimed it and is sending it (or was killed doing so: its lease runs out then): "now" would
        # hand it to a second worker, and the e-mail or group-chat message would go out twice
        raise ValidationError({"status": _(
            "A worker is sending this delivery right now. If it does not get through, it is tried again by "
            "%(time)s at the latest."
        ) % {"time": timezone.localtime(delivery.next_attempt_at).strftime("%Y-%m-%d %H:%M")}})  # fmt: skip
    ahead = failing_ahead(delivery)
    if ahead is not None and _in_flight(ahead, now):
        raise ValidationError({"status": _(
            "This delivery waits behind #%(ahead)s, an earlier one to the same endpoint that failed, and a worker is "
            "trying that one right now: this one goes out after it, once it gets through."
        ) % {"ahead": ahead.pk}})  # fmt: skip
    with transaction.atomic():
        queued = [delivery.pk]
        if ahead is not None:
            ahead_before = {"status": ahead.status, "next_attempt_at": ahead.next_attempt_at}
            Delivery.objects.filter(pk=ahead.pk, attempts=ahead.attempts, status=Delivery.Status.FAILED,
                                    sending_since__isnull=True).update(next_attempt_at=now)  # fmt: skip
            ahead.refresh_from_db()
            audit.record(
                A.UPDATE, ahead, user=user, action_name="retry", ahead_of=delivery.pk,
                changes=audit.diff(ahead_before, {"status": ahead.status, "next_attempt_at": ahead.next_attempt_at}),
            )  # fmt: skip
            between = Delivery.objects.filter(
                endpoint_id=delivery.endpoint_id, pk__gt=ahead.pk, pk__lt=delivery.pk,
                status__in=(Delivery.Status.PENDING, Delivery.Status.FAILED), sending_since__isnull=True,
            ).exclude(event="ping")  # fmt: skip
            held = list(between.order_by("pk").values_list("pk", flat=True))
            between.update(next_attempt_at=now)  # their turn: as the worker's hold moves them, no attempt counted
            queued = [ahead.pk, *held, delivery.pk]  # one worker, in their order
        Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).exclude(status=Delivery.Status.SENT).update(
            status=Delivery.Status.PENDING if delivery.status == Delivery.Status.GAVE_UP else delivery.status,
            next_attempt_at=now, sending_since=None,  # one whose send was interrupted: sent again, as asked
        )
        delivery.refresh_from_db()
        extra = {"behind": ahead.pk} if ahead is not None else {}
        audit.record(
            A.UPDATE, delivery, user=user, action_name="retry",
            changes=audit.diff(before, {"status": delivery.status, "next_attempt_at": delivery.next_attempt_at}),
            **extra,
        )  # fmt: skip
        _queue(queued)
    delivery.behind = ahead.pk if ahead is not None else None
    return delivery


# --- administration: webhook endpoints -------------------------------------------------------------


def new_secret() -> str:
    return secrets.token_hex(32)


def known_events() -> list[str]:
    """The events PharmaCRM sends to webhooks: `ticket.<kind>` for every ticket event, and `ping` (a test)."""
    from pharmacrm.servicedesk.choices import EventKind

    return [f"ticket.{kind}" for kind in EventKind.values] + ["ping"]


def _clean_events(value) -> list[str]:
    """The event names (or * patterns) an endpoint wants; a name that matches no event PharmaCRM sends (a typo:
    the endpoint would silently get nothing) is refused."""
    if value in (None, ""):
        return []
    if isinstance(value, str):  # commas, spaces, or a Chinese input method's ， 、 ；
        value = re.split(r"[\s,，、;；]+", value)
    if not isinstance(value, list | tuple):
        raise ValidationError({"events": _("Give a list of event names.")})
    events = []
    for item in value:
        item = str(item).strip()
        if not item:
            continue
        if not EVENT.fullmatch(item):
            raise ValidationError({"events": _("“%(name)s” is not an event name.") % {"name": item[:64]}})
        if not any(fnmatch.fnmatchcase(known, item) for known in known_events()):
            raise ValidationError({"events": _(
                "No event is called “%(name)s”. The events are: %(known)s (or a pattern such as ticket.*)."
            ) % {"name": item[:64], "known": ", ".join(known_events())}})  # fmt: skip
        if item not in events:
            events.append(item)
    return events


def _validate_endpoint(endpoint: WebhookEndpoint) -> None:
    errors = {}
    endpoint.name = (endpoint.name or "").strip()
    if not endpoint.name:
        errors["name"] = [_("Give the endpoint a name.")]
    try:
        URLValidator(schemes=["http", "https"])(endpoint.url or "")
    except ValidationError:
        errors["url"] = [_("Enter an http:// or https:// address.")]
    else:
        if len(endpoint.url) > URL_MAX:
            errors["url"] = [_("At most %(max)d characters.") % {"max": URL_MAX}]
    if endpoint.format not in WebhookEndpoint.Format.values:
        errors["format"] = [_("Choose a format from the list.")]
    if errors:
        raise ValidationError(errors)


def _snapshot(endpoint: WebhookEndpoint) -> dict:
    return {k: getattr(endpoint, k) for k in ENDPOINT_FIELDS}


def audited_url(url: str) -> str:
    """A webhook address as the audit trail keeps it: where it points, without what lets one post there. A WeCom
    bot's address carries its key (`send?key=…`) and a DingTalk bot's its `access_token`: whoever reads either can
    post into the group chat. The values of the query, a password and a fragment are `***`; the scheme, host,
    path and parameter names stay."""
    try:
        parts = urllib.parse.urlsplit(str(url or ""))
    except ValueError:
        return "***" if url else ""
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _at, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{host}"
    query = "&".join(
        f"{name}=***" if sep else name
        for name, sep, _value in (item.partition("=") for item in parts.query.split("&") if item)
    )  # fmt: skip
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))


def _audited(changes: dict) -> dict:
    """The changes of an endpoint for the audit trail (a hash chain: what it records stays readable for good):
    its address masked by `audited_url`. A new key shows as the address changed, each side masked."""
    if "url" in changes:
        changes = {**changes, "url": [audited_url(v) if v else v for v in changes["url"]]}
    return changes


SENT_AGAIN = dt.timedelta(minutes=10)


def _created_just_now(user, endpoint: WebhookEndpoint, secret: str) -> WebhookEndpoint | None:
    """The endpoint this user created in the last ten minutes with the same name, address, format, events and
    state (and secret, when one was typed): the form sent twice (a double click on Save, Back and Save, an API
    client's retry). A second endpoint would post every ticket event into the group chat twice."""
    ids = AuditEntry.objects.filter(
        action=A.CREATE, object_type=WebhookEndpoint._meta.label_lower, actor=user,
        at__gte=timezone.now() - SENT_AGAIN,
    ).values_list("object_id", flat=True)  # fmt: skip
    same = WebhookEndpoint.objects.filter(
        pk__in=[int(i) for i in ids if i.isdecimal() and len(i) < 19], name=endpoint.name,
        format=endpoint.format, active=endpoint.active,
    ).order_by("-pk")  # fmt: skip
    # the address is encrypted (no SQL comparison): compared here, among this user's few endpoints of the minutes past
    return next((e for e in same if e.url == endpoint.url and e.events == endpoint.events
                 and (not secret or e.secret == secret)), None)  # fmt: skip


def create_endpoint(user, data: dict) -> WebhookEndpoint:
    """A new endpoint; a secret is generated when none is given. The secret is shown once, by the caller. The
    same endpoint sent again by the same user within ten minutes is not created twice: the first is returned,
    with `sent_again` set (its secret is shown to them again: the page that showed it was never seen)."""
    access.require(user, Cap.MANAGE_SERVICE)
    endpoint = WebhookEndpoint(**{k: v for k, v in data.items() if k in ENDPOINT_FIELDS})
    endpoint.events = _clean_events(data.get("events"))
    given = (data.get("secret") or "").strip()
    endpoint.secret = given or new_secret()
    _validate_endpoint(endpoint)
    with transaction.atomic():
        # one creation at a time per administrator, so that a double click's two requests see each other
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
        same = _created_just_now(user, endpoint, given)
        if same is not None:
            same.sent_again = True
            return same
        endpoint.save(force_insert=True)
        audit.record(A.CREATE, endpoint, user=user, changes=_audited(audit.diff({}, _snapshot(endpoint))))
    return endpoint


def update_endpoint(user, endpoint: WebhookEndpoint, data: dict, *, version: int | None = None) -> WebhookEndpoint:
    """Change an endpoint; a non-empty `secret` replaces the secret (the audit trail records only that it
    changed). `version`, when given, is the one the editor loaded: a stale one raises ConflictError."""
    access.require(user, Cap.MANAGE_SERVICE)
    before = _snapshot(endpoint)
    for key in ENDPOINT_FIELDS:
        if key in data:
            setattr(endpoint, key, _clean_events(data[key]) if key == "events" else data[key])
    new = (data.get("secret") or "").strip()
    _validate_endpoint(endpoint)
    changes = audit.diff(before, _snapshot(endpoint))
    if new and new != endpoint.secret:
        endpoint.secret = new
        changes["secret"] = ["***", "***"]
    if not changes:
        return endpoint
    with transaction.atomic():
        qs = WebhookEndpoint.objects.filter(pk=endpoint.pk)
        current = (qs.select_for_update() if connection.features.has_select_for_update else qs).values_list(
            "version", flat=True
        ).first()
        if current is None or (version is not None and (not is_id(version) or int(version) != current)):
            raise ConflictError(current or 0)
        endpoint.version = current + 1
        endpoint.save()
        audit.record(A.UPDATE, endpoint, user=user, changes=_audited(changes))
    return endpoint


def deactivate_endpoint(user, endpoint: WebhookEndpoint, *, version: int | None = None) -> WebhookEndpoint:
    """Switch an endpoint off (it stays for its delivery log)."""
    return update_endpoint(user, endpoint, {"active": False}, version=version)


TEST_SENT_AGAIN = dt.timedelta(minutes=1)


def send_test(user, endpoint: WebhookEndpoint) -> Delivery:
    """Queue a `ping` event to this endpoint only (whether or not it is active or subscribed). While a test message
    queued in the last minute has not gone out yet (a double click on "Send test", an API client's retry), that one
    is returned, with `sent_again` set, instead of posting a second one into the group chat; once it went or failed,
    a test queues another."""
    access.require(user, Cap.MANAGE_SERVICE)
    now = timezone.now()
    doc = {
        "event": "ping",
        "at": now.isoformat(),
        "data": {"message": render_in(None, gettext_lazy("Test message from PharmaCRM")), "endpoint": endpoint.name},
    }
    with transaction.atomic():
        # one test at a time per endpoint, so that a double click's two requests see each other
        qs = WebhookEndpoint.objects.filter(pk=endpoint.pk)
        list((qs.select_for_update() if connection.features.has_select_for_update else qs).values_list("pk", flat=True))
        waiting = (
            Delivery.objects.filter(endpoint=endpoint, event="ping", status=Delivery.Status.PENDING,
                                    created_at__gte=now - TEST_SENT_AGAIN)
            .order_by("-pk").first()
        )  # fmt: skip
        if waiting is not None:
            waiting.sent_again = True
            return waiting
        delivery = Delivery.objects.create(
            channel=Delivery.Channel.WEBHOOK,
            endpoint=endpoint,
            event="ping",
            payload=doc,
            next_attempt_at=now,
            created_at=now,
        )
        audit.record(A.UPDATE, endpoint, user=user, action_name="send_test", delivery=delivery.pk)
        _queue([delivery.pk])
    return delivery


# --- ticket events → webhooks ----------------------------------------------------------------------


def ticket_event_payload(event) -> dict:
    """What a webhook learns about a ticket event: numbers, codes and the subject (with any phone number, e-mail
    address or ID card number in it masked) — no customer's personal data (no caller name or phone, no description). The deadline events also say which deadline (`clock`); a breach
    whether it was recorded late (`late`, and then `recorded_at`: its `at` is when the deadline passed); a withdrawn
    breach when it had been recorded (`breached`) and the deadline counted again (`due`)."""
    ticket = event.ticket
    out = {
        "ticket": {
            "id": ticket.pk,
            "number": ticket.number,
            # as typed on the public form, it may hold the caller's number or address (请回电 138 0013 8000)
            "subject": mask_contacts(ticket.subject),
            "status": ticket.status,
            "priority": ticket.priority,
            "category": getattr(ticket.category, "code", None) if ticket.category_id else None,
            "url": _absolute(f"/service/tickets/{ticket.pk}/"),
        },
        "kind": event.kind,
        "at": event.at if isinstance(event.at, dt.datetime) else None,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "actor": event.actor.get_username() if event.actor_id else None,
    }
    from pharmacrm.servicedesk.choices import EventKind

    data = event.data if isinstance(event.data, dict) else {}
    if event.kind in (EventKind.WARNED, EventKind.BREACHED, EventKind.UNBREACHED) and data.get("clock"):
        out["clock"] = data["clock"]
    if event.kind == EventKind.BREACHED:
        out["late"] = bool(data.get("late"))
        if data.get("late"):
            out["recorded_at"] = data.get("recorded")
    if event.kind == EventKind.UNBREACHED:
        out.update(breached=data.get("breached"), due=data.get("due"))
    return out


def emit_ticket_events(events: Iterable) -> int:
    """Emit `ticket.<kind>` for ticket events (for code that bulk-creates events, which saves no signal). A breach
    recorded late (services.LATE_AFTER) is history: sent marked `late`, and not to the group bots."""
    if not WebhookEndpoint.objects.filter(active=True).exists():
        return 0
    total = 0
    for e in events:
        payload = ticket_event_payload(e)
        total += emit(f"ticket.{e.kind}", payload, news=not payload.get("late"))
    return total
