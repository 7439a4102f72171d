"""Notifications (the bell), their deliveries by e-mail and webhook, and the webhook endpoints.

A delivery is never lost: it is written in the caller's transaction, sent by the worker after the commit,
and retried with an exponential back-off until it is sent or has used up its attempts; every failure's
reason stays on the row (`log`). Notification texts carry no customer's personal data (ticket numbers and
subjects only)."""

from __future__ import annotations

import fnmatch

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext, pgettext_lazy

from pharmacrm.core.deferred import thaw
from pharmacrm.core.fields import EncryptedTextField
from pharmacrm.customers.normalise import mask_contacts, mask_contacts_cut

TITLE_LENGTH = 200  # a notification's title is cut at this length (services.send)


class Notification(models.Model):
    """One message in a user's bell."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="notifications", verbose_name=_("recipient")
    )
    kind = models.SlugField(_("kind"), max_length=50)
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=TITLE_LENGTH)
    body = models.TextField(_("text"), blank=True)
    url = models.CharField(_("link"), max_length=500, blank=True)
    object_type = models.CharField(_("object type"), max_length=64, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    # the title and text as templates and arguments (core.deferred): each reader reads them in their own
    # language; `title` and `body` hold them in the product's language (search, the admin, old rows)
    spec = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at", "-created_at"], name="notify_inbox")]

    def __str__(self) -> str:
        return self.title

    @property
    def shown_title(self) -> str:
        """The title in the reader's (the active) language, as the reader may see it (`masked`)."""
        return self._shown("title")[:TITLE_LENGTH]

    @property
    def shown_body(self) -> str:
        return self._shown("body")

    @cached_property
    def masked(self) -> bool:
        """Whether the reader — the recipient, the only one who reads a notification — sees personal data masked
        (an agent, an analyst …): a ticket's subject in the title or text, as a customer typed it (请回电 138 0013
        8000), is then shown with its contact details masked (normalise.mask_contacts), on the page, in the API and
        in a notice about it, also in notifications stored before; the e-mails mask them for everyone. What is
        stored is not changed. Pages and lists set it once for all their rows (services.shown_to)."""
        from pharmacrm.core import personal

        return personal.masks_free_text(self.recipient)

    def _shown(self, part: str) -> str:
        if isinstance(self.spec, dict) and part in self.spec:
            text = thaw(self.spec[part])
        else:
            text = getattr(self, part)
        if not text or not self.masked:
            return text
        if part == "title":  # stored cut at 200 characters (older rows): a number cut mid-way at its end is masked too
            return mask_contacts_cut(text, TITLE_LENGTH)
        return mask_contacts(text)


class WebhookEndpoint(models.Model):
    """Where ticket events are POSTed: a generic JSON receiver or a 企业微信 / 钉钉 group bot."""

    class Format(models.TextChoices):
        GENERIC = "generic", _("Generic JSON (signed)")
        WECOM = "wecom", _("WeCom (企业微信) group bot")
        DINGTALK = "dingtalk", _("DingTalk (钉钉) group bot")

    name = models.CharField(_("name"), max_length=100)
    # encrypted like the secret: a WeCom bot's address carries its key (`send?key=…`), a DingTalk bot's its
    # `access_token`, and either lets whoever reads it post into the group chat. Never filtered on (the ORM refuses):
    # compare in Python among a few rows found otherwise (services._created_just_now). At most 500 characters
    # (services._validate_endpoint, the form and the API)
    url = EncryptedTextField(_("URL"), blank=False, validators=[URLValidator(schemes=["http", "https"])])
    secret = EncryptedTextField(_("signing secret"))
    format = models.CharField(_("format"), max_length=10, choices=Format.choices, default=Format.GENERIC)
    events = models.JSONField(_("events"), default=list, blank=True)  # empty: every event
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def shown_url(self) -> str:
        """The address as lists show it: where it points, without the bot's key (`services.audited_url`)."""
        from .services import audited_url

        return audited_url(self.url)

    @property
    def events_shown(self) -> list[tuple[str, str]]:
        """The events it takes as the list shows them: each in words where the product has them, with its name
        (what the form takes); a pattern (ticket.*) as it is."""
        return [(event_words(event), event) for event in self.events]

    def wants(self, event: str) -> bool:
        """Empty: every event; else a listed name, or a pattern with * (``ticket.*``)."""
        return not self.events or any(fnmatch.fnmatchcase(event, name) for name in self.events)


def event_words(event: str) -> str:
    """A webhook event or the kind of an e-mailed notification in words, in the active language (工单已超时 for
    `ticket.breached`, 培训提醒 for `training.reminder`); an event the product does not know stays as its name."""
    from pharmacrm.servicedesk.choices import EventKind

    from .kinds import KIND_LABELS

    if event == "ping":
        return str(pgettext("webhook event", "Test message"))
    if event in KIND_LABELS:
        return str(KIND_LABELS[event])
    kind = event.removeprefix("ticket.")
    if not event.startswith("ticket.") or kind not in EventKind.values:
        return event
    return str(EventKind(kind).label)


class Delivery(models.Model):
    """One message to send: an e-mail of a notification, or one event to one webhook endpoint."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        WEBHOOK = "webhook", _("Webhook")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed, will retry")
        GAVE_UP = "gave_up", _("Gave up")

    notification = models.ForeignKey(
        Notification,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
        verbose_name=_("notification"),
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    email = models.EmailField(_("e-mail address"), blank=True)
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="deliveries",
        verbose_name=_("endpoint"),
    )
    event = models.CharField(_("event"), max_length=64, blank=True)
    payload = models.JSONField(_("payload"), default=dict)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    log = models.JSONField(_("attempt log"), default=list, blank=True)  # [{at, attempt, code, error}]
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    # when a worker began sending it (tasks._start_send); cleared with what the send came to
    sending_since = models.DateTimeField(_("sending since"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "failed"]),
                name="notify_delivery_due",
            ),
            models.Index(fields=["status", "-created_at"], name="notify_delivery_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} #{self.pk} → {self.target}"

    @property
    def event_label(self) -> str:
        return event_words(self.event) if self.event else ""

    @property
    def last_error_shown(self) -> str:
        """Why the last attempt failed, in the reader's language (a reason of ours is kept as a code)."""
        from pharmacrm.core import notsent

        return notsent.shown(self.last_error)

    @property
    def target(self) -> str:
        if self.channel == self.Channel.EMAIL:
            return self.email
        return str(self.endpoint) if self.endpoint_id else ""
