"""Forms of the links panel (link, merge), the queue's search filter and its bulk actions."""

from __future__ import annotations

import re
import unicodedata

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import crypto
from pharmacrm.core.models import Team, User
from pharmacrm.customers import normalise
from pharmacrm.customers.forms import BLANK, ServiceErrorsMixin

from .bulk import ACTIONS
from .choices import Channel, LinkKind, Priority, RootCause, Status
from .forms import QueueFilterForm, handlers, impact_field

NUMBER = re.compile(r"TK-\d{4}-\d{6}", re.IGNORECASE)
PHONE = re.compile(r"[+\d][\d\s()-]{6,}(?:(?:转|ext\.?|x|#)\s*\d{1,6})?", re.IGNORECASE)


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

    def search_q(self, value: str) -> Q | None:
        value = (value or "").strip()
        if not value:
            return None
        plain = typed(value)  # a number or a phone typed in full width is the same number
        if NUMBER.fullmatch(plain):
            return Q(number=plain.upper())
        digits = normalise.phone(plain)
        if PHONE.fullmatch(plain) and len(digits) >= 7:
            # a caller's earlier tickets by their phone: the caller's own number (blind index), or the phone
            # of the person or institution the ticket is on — a merged-away record's phone, the record it was
            # merged into, which holds its tickets now (as the customer search does)
            # (indexed columns only, the people and institutions found first: a look-up searches every ticket)
            from pharmacrm.customers.models import Institution, Person
            from pharmacrm.customers.search import survivors

            bidx = crypto.blind_index(digits, "phone")
            people = Person.objects.filter(Q(mobile_bidx=bidx) | Q(landline_bidx=bidx))
            places = Institution.objects.filter(phone_norm=digits)
            found = Q(caller_phone_bidx=bidx) | Q(person_id__in=people.values("id"))
            found |= Q(institution_id__in=places.values("id"))
            for field, merged_into in (
                ("person_id", survivors(people, 1000)),
                ("institution_id", survivors(places, 1000)),
            ):
                if merged_into:
                    found |= Q(**{f"{field}__in": merged_into})
            return found
        found = Q(subject__icontains=value)
        simplified = normalise.simplified(value)
        if simplified != value:  # typed in Traditional characters (膠囊破損): the subjects written in Simplified too
            found |= Q(subject__icontains=simplified)
        return found


class TicketNumberField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        value = typed(value).upper()
        if value and not NUMBER.fullmatch(value):
            raise forms.ValidationError(_("Enter a ticket number such as TK-2026-000123."))
        return value


class LinkForm(ServiceErrorsMixin, forms.Form):
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
    team = forms.ModelChoiceField(label=_("Team queue"), queryset=Team.objects.none(), required=False)
    status = forms.ChoiceField(label=_("New status"), choices=BLANK + Status.choices, required=False)
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
