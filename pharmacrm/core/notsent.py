"""Why a mail or a webhook was not sent, kept on the outbox row as a code and translated when it is shown.

The worker wrote these reasons as text in the site's default language (zh-Hans) when it gave up on a reply, an
acknowledgement or a notification: an agent or an administrator whose screen is in English read Chinese. Now the
row keeps `code:<name>` and every page and API answer shows the reason in the reader's language. What the mail
server or the receiver answered (an SMTP refusal, a DSN, an HTTP status) is kept as it came: it is no text of
ours to translate."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

PREFIX = "code:"

REASONS = {
    # the ticket's outbox (servicedesk.mail)
    "ticket_no_address": _("Not sent: the ticket no longer has the customer's e-mail address."),
    "no_smtputf8": _(
        "Not sent: the mail server cannot send to an address with Chinese characters (it does not support "
        "SMTPUTF8). Enter another address in the ticket's details, or ask the administrator to enable SMTPUTF8 on "
        "the mail server, then send again."
    ),
    # the notification outbox (notify.tasks)
    "recipient_deactivated": _("Not sent: the recipient's account was deactivated."),
    "recipient_no_email": _("Not sent: the recipient no longer has an e-mail address."),
    "endpoint_off": _("Not sent: the endpoint was switched off."),
    "send_interrupted": _(
        "Not sent again: the worker stopped while sending it, so it may have gone out. If the recipient did not "
        "get it, retry it."
    ),
}


def code(name: str) -> str:
    """What the row keeps for one of REASONS."""
    if name not in REASONS:
        raise KeyError(name)
    return PREFIX + name


def shown(stored: str | None) -> str:
    """The reason as the reader reads it: a code in the active language, anything else as it was stored."""
    stored = stored or ""
    if stored.startswith(PREFIX):
        reason = REASONS.get(stored[len(PREFIX) :])
        if reason is not None:
            return str(reason)
    return stored


def known_texts() -> dict[str, str]:
    """{text: code} of every reason as the worker used to store it, in each of the site's languages (the data
    migrations turn such rows into codes)."""
    from django.conf import settings
    from django.utils import translation

    texts: dict[str, str] = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            for name, reason in REASONS.items():
                texts[str(reason)] = code(name)
    return texts
