"""Forms of the links panel (link, merge), the queue's search filter and its bulk actions."""

from __future__ import annotations

import re
import unicodedata

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import crypto
from pharmacrm.core.ids import id_set
from pharmacrm.core.models import Team, User
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers import normalise
from pharmacrm.customers.forms import BLANK, OnceTokenForm, ServiceErrorsMixin

from .bulk import ACTIONS, SETTABLE_STATUSES
from .choices import Channel, LinkKind, Priority, RootCause
from .forms import QueueFilterForm, handlers, impact_field

NUMBER = re.compile(r"TK-\d{4}-\d{6}", re.IGNORECASE)
# a phone: its country's code in brackets too ((852) 9123 4567, (+852) 9123 4567)
PHONE = re.compile(r"(?:\(\s*\+?)?[+\d][\d\s()-]{6,}(?:(?:转|ext\.?|x|#)\s*\d{1,6})?", re.IGNORECASE)
# a subject that may hold a phone or ID card number (normalise.mask_contacts): three digits in a row, also full-width
_CONTACT_LIKE = r"[0-9０-９]{3}"


def typed(value: str) -> str:
    """What was typed, as ASCII where a Chinese input method in full-width mode gave full-width letters, digits and
    hyphens (ＴＫ－２０２６－０００１２３ is TK-2026-000123)."""
    return unicodedata.normalize("NFKC", value or "").strip()


class QueueSearchForm(QueueFilterForm):
    """The queue filters with a search box first: a ticket number, a caller's phone, or words of the subject."""

    q = forms.CharField(
        label=_("Search"), required=False, max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("TK-2026-000123, phone or subject"),
                                      "data-keys-search": ""}),
    )  # fmt: skip
    field_order = ["q", "status", "priority", "category"]

    @staticmethod
    def is_lookup(value: str) -> bool:
        """A ticket number or a phone number: the agent looks up one caller's tickets, wherever they are."""
        value = typed(value)
        return bool(NUMBER.fullmatch(value) or (PHONE.fullmatch(value) and len(normalise.phone(value)) >= 7))

    def search_q(self, value: str, user=None) -> Q | None:
        """The tickets the search box finds. A phone number looked up by a `user` who sees personal data masked is
        audited and limited an hour (customers.search.check_contact_look_up: PermissionDenied beyond); words of
        the subject are searched as that user sees the subject (`shown_words_q`)."""
        value = (value or "").strip()
        if not value:
            return None
        plain = typed(value)  # a number or a phone typed in full width is the same number
        if NUMBER.fullmatch(plain):
            return Q(number=plain.upper())
        digits = normalise.phone(plain)
        if PHONE.fullmatch(plain) and len(digits) >= 7:
            if user is not None:
                from pharmacrm.customers.search import check_contact_look_up

                check_contact_look_up(user, plain)
            # a caller's earlier tickets by their phone: the caller's own number (blind index), or the phone
            # of the person or institution the ticket is on — a merged-away record's phone, the record it was
            # merged into, which holds its tickets now (as the customer search does)
            # (indexed columns only, the people and institutions found first: a look-up searches every ticket)
            from pharmacrm.customers.models import Institution, Person
            from pharmacrm.customers.search import survivors

            readings = normalise.phone_readings(plain)  # 852-9123-4567 is +85291234567
            bidxs = [crypto.blind_index(reading, "phone") for reading in readings]
            people = Person.objects.filter(Q(mobile_bidx__in=bidxs) | Q(landline_bidx__in=bidxs))
            places = Institution.objects.filter(phone_norm__in=readings)
            found = Q(caller_phone_bidx__in=bidxs) | Q(person_id__in=people.values("id"))
            found |= Q(institution_id__in=places.values("id"))
            for field, merged_into in (
                ("person_id", survivors(people, 1000)),
                ("institution_id", survivors(places, 1000)),
            ):
                if merged_into:
                    found |= Q(**{f"{field}__in": merged_into})
            return found
        found = Q()
        for term in self.terms(value):
            found |= Q(subject__icontains=term)
        return found

    @staticmethod
    def terms(value: str) -> list[str]:
        """The words searched in subjects: as typed, and in Simplified characters when typed in Traditional ones
        (膠囊破損: the subjects written in Simplified too)."""
        value = (value or "").strip()
        simplified = normalise.simplified(value)
        return [value] if simplified == value else [value, simplified]

    def is_words(self, value: str) -> bool:
        """Whether `value` searches the words of subjects (not a ticket number or a phone look-up)."""
        return bool((value or "").strip()) and not self.is_lookup(value)

    @classmethod
    def shown_words_q(cls, tickets, value: str) -> Q:
        """For a user who sees personal data masked: of `tickets` (those the user may see, in the queue shown), the
        ones whose subject holds the words as the user sees it — with the phone numbers, e-mail addresses and ID
        card numbers in it masked (normalise.mask_contacts). A part of a masked number (6 digits of 138****5678)
        found in the stored subject told the hidden digits by which tickets came up. Only subjects that may hold a
        contact detail (3 digits in a row, an @) are read to check (one query, the subjects the search found)."""
        terms = cls.terms(value)
        found, maybe = Q(), Q(subject__contains="@") | Q(subject__contains="＠") | Q(subject__regex=_CONTACT_LIKE)
        for term in terms:
            found |= Q(subject__icontains=term)
        folded = [t.casefold() for t in terms]
        shown = [
            pk for pk, subject in tickets.filter(found).filter(maybe).values_list("pk", "subject").iterator()
            if any(t in normalise.mask_contacts(subject).casefold() for t in folded)
        ]  # fmt: skip
        return (found & ~maybe) | Q(pk__any_of=id_set(shown))  # however many, one SQL parameter


class TicketNumberField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        value = typed(value).upper()
        if value and not NUMBER.fullmatch(value):
            raise forms.ValidationError(_("Enter a ticket number such as TK-2026-000123."))
        return value


class LinkForm(ServiceErrorsMixin, OnceTokenForm):  # its one-time token: sent twice, linked once
    to_ticket = TicketNumberField(
        label=_("Ticket number"), max_length=16, widget=forms.TextInput(attrs={"placeholder": "TK-2026-000123"})
    )
    kind = forms.ChoiceField(label=_("Relation"), choices=LinkKind.choices, initial=LinkKind.RELATED)


class MergeForm(ServiceErrorsMixin, forms.Form):
    into = TicketNumberField(
        label=_("Merge into ticket"), max_length=16,
        help_text=_("This ticket is closed and points to that one; its messages stay visible there."),
        widget=forms.TextInput(attrs={"placeholder": "TK-2026-000123"}),
    )  # fmt: skip
    reason = forms.CharField(label=_("Reason"), max_length=500)
    version = forms.IntegerField(widget=forms.HiddenInput)


class BulkForm(ServiceErrorsMixin, forms.Form):
    """The bulk-action bar above a queue; the tickets come as `ticket` checkboxes (with `version-<id>`)."""

    action = forms.ChoiceField(label=_("Action"), choices=BLANK + list(ACTIONS.items()))
    assignee = forms.ModelChoiceField(label=_("Assignee"), queryset=User.objects.none(), required=False)
    team = PinyinModelChoiceField(label=_("Team queue"), queryset=Team.objects.none(), required=False)
    status = forms.ChoiceField(
        label=_("New status"), choices=BLANK + [(s.value, s.label) for s in SETTABLE_STATUSES], required=False
    )
    priority = forms.ChoiceField(label=_("New priority"), choices=BLANK + Priority.choices, required=False)
    reason = forms.CharField(label=_("Reason (priority)"), max_length=500, required=False)
    resolution_summary = forms.CharField(
        label=_("Resolution summary"), max_length=2000, required=False,
        help_text=_("To resolve, or to close tickets that are still open."),
    )  # fmt: skip
    root_cause = forms.ChoiceField(label=_("Root cause"), choices=BLANK + RootCause.choices, required=False)
    customer_impact = impact_field(_("Impact on the customer"), _("Needed to resolve complaints."))
    company_impact = impact_field(_("Impact on the company"), _("Needed to resolve complaints."))
    informed_channel = forms.ChoiceField(label=_("Informed by"), choices=BLANK + Channel.choices, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = handlers()
        self.fields["team"].queryset = Team.objects.order_by("name")

    def params(self) -> dict:
        d = self.cleaned_data
        return {k: d.get(k) for k in ("assignee", "team", "status", "priority", "reason", "resolution_summary",
                                      "root_cause", "customer_impact", "company_impact", "informed_channel")}  # fmt: skip
