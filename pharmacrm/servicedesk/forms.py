"""Service-desk forms: queue filters, the intake form (validation delegated to services.create_ticket), and
the ticket page's actions (status step, first response, priority change). Selects offer only what the
user may see."""

from __future__ import annotations

import datetime as dt
import json

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import access
from pharmacrm.core.addresses import validate_address
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import Team, User
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.core.roles import MATRIX, Cap
from pharmacrm.customers.choices import PreferredLanguage
from pharmacrm.customers.forms import (
    ANY,
    BLANK,
    OnceTokenForm,
    OwnIdsMixin,
    ServiceErrorsMixin,
    _limit_picker,
)
from pharmacrm.customers.models import Institution, Person

from .choices import Channel, Complexity, Impact, Priority, RootCause, Status
from .models import Product, TicketCategory

PEOPLE_LIMIT = 300  # people offered in the person select (those of the chosen institution come first)
LOCAL_INPUT = "%Y-%m-%dT%H:%M"
EARLIEST_BY_HAND = dt.timedelta(days=30)  # as for a mail's Date header (mail.MAX_AGE)


def handlers():
    """Active users who may handle tickets: the choices for an assignee."""
    roles = [r.value for r in MATRIX[Cap.HANDLE_TICKETS]]
    return User.objects.filter(is_active=True, groups__name__in=roles).distinct().order_by("username")


def categories():
    return TicketCategory.objects.filter(active=True).order_by("position", "code")


# --- queue filters -------------------------------------------------------------------------------


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=ANY + Status.choices, required=False)
    priority = forms.ChoiceField(label=_("Priority"), choices=ANY + Priority.choices, required=False)
    category = forms.ModelChoiceField(
        label=_("Category"), queryset=TicketCategory.objects.none(), required=False, empty_label=_("Any")
    )
    queue = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].queryset = categories()

    def cleaned(self) -> dict:
        """Valid filter values; an invalid one is ignored rather than failing the list."""
        self.is_valid()
        return getattr(self, "cleaned_data", {}) or {}


# --- intake --------------------------------------------------------------------------------------


def people_options(user, institution_id) -> list[Person]:
    """The people (visible to the user) of one institution, for the person select."""
    if not institution_id or not is_id(institution_id):
        return []
    qs = access.people_for(user, Person.objects.active()).filter(
        Q(institution_id=int(institution_id)) | Q(department_id=int(institution_id))
    )
    return list(qs.order_by("name_key", "id").only("id", "name", "title", "preferred_language")[:PEOPLE_LIMIT])


class PersonSelect(forms.Select):
    """The person select: on the intake form each person's option names the language on their record
    (data-language), which the form's language select takes while the agent has not chosen one (app.js)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.languages: dict[str, str] = {}  # person id → their preferred language (only those who have one)

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        language = self.languages.get(str(value))
        if language:
            option["attrs"]["data-language"] = language
        return option


class CustomerPickers(forms.Form):
    """The institution and person selects of a ticket (intake, editing): only customers the user may see,
    and choosing an institution reloads the person select with its people."""

    institution = forms.ModelChoiceField(
        label=_("Institution"), queryset=Institution.objects.none(), required=False
    )
    person = forms.ModelChoiceField(
        label=_("Person"), queryset=Person.objects.none(), required=False, empty_label="—",
        help_text=_("People of the chosen institution."), widget=PersonSelect,
    )  # fmt: skip

    def _set_up_pickers(self, user, options_url: str = "") -> None:
        """`options_url` answers `?_options=person&institution=…` with the person <option>s (default: intake's)."""
        institutions = access.institutions_for(user, Institution.objects.active())
        self.fields["institution"].queryset = institutions
        inst_id = self.data.get("institution") if self.is_bound else self.initial.get("institution")
        _limit_picker(self.fields["institution"], [inst_id])
        self.fields["person"].queryset = access.people_for(user, Person.objects.active())
        person_id = self.data.get("person") if self.is_bound else self.initial.get("person")
        shown = people_options(user, inst_id)
        if person_id and is_id(person_id) and int(person_id) not in {p.pk for p in shown}:
            shown = list(self.fields["person"].queryset.filter(pk=int(person_id))) + shown
        self.fields["person"].widget.choices = BLANK + [(p.pk, _person_label(p)) for p in shown]
        self.people_shown = shown
        self.fields["institution"].widget.attrs.update(
            {"hx-get": options_url or reverse("servicedesk:ticket-create"), "hx-vals": json.dumps({"_options": "person"}),
             "hx-target": "#id_person", "hx-trigger": "change", "hx-swap": "innerHTML"}
        )  # fmt: skip


class IntakeForm(ServiceErrorsMixin, CustomerPickers, OnceTokenForm):
    # no max_length: the browser would cut a longer name pasted in without a word; the service refuses it, naming
    # the field (services.caller_name_error)
    caller_name = forms.CharField(
        label=_("Caller's name"), required=False,
        help_text=_("For a caller who is not (yet) a recorded customer."),
    )  # fmt: skip
    caller_phone = forms.CharField(
        label=_("Caller's phone"), required=False, max_length=32, widget=forms.TextInput(attrs={"inputmode": "tel"})
    )
    channel = forms.ChoiceField(label=_("Channel"), choices=Channel.choices, initial=Channel.PHONE)
    received_at = forms.DateTimeField(
        label=_("Received at"), required=False, input_formats=[LOCAL_INPUT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT),
        help_text=_("When the customer got in touch; may be earlier than now."),
    )  # fmt: skip
    category = forms.ModelChoiceField(
        label=_("Category"), queryset=TicketCategory.objects.none(), empty_label="—", to_field_name="code"
    )
    priority = forms.ChoiceField(
        label=_("Priority"), choices=[("", _("The category's default"))] + Priority.choices, required=False
    )
    complexity = forms.ChoiceField(
        label=_("Complexity"), choices=[("", _("The category's default"))] + Complexity.choices, required=False
    )
    priority_reason = forms.CharField(
        label=_("Reason for the override"), required=False, max_length=500,
        help_text=_("Needed when the priority or complexity differs from the category's (except urgent)."),
    )  # fmt: skip
    subject = forms.CharField(label=_("Subject"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 5}))
    product = PinyinModelChoiceField(
        label=_("Product"), queryset=Product.objects.none(), required=False, empty_label="—"
    )
    batch_number = forms.CharField(label=_("Batch / lot number"), required=False, max_length=40)
    reply_email = forms.CharField(  # 张三@公司.cn too, which EmailField (and the browser's type=email) refuse
        label=_("Customer's e-mail"), required=False, max_length=254, validators=[validate_address],
        widget=forms.TextInput(attrs={"inputmode": "email", "autocomplete": "off"}),
        help_text=_("Replies to the customer are e-mailed here."),
    )  # fmt: skip
    safety_relevant = forms.BooleanField(
        label=_("Safety-relevant"), required=False,
        help_text=_("A possible adverse reaction or quality problem: pharmacovigilance is told."),
    )  # fmt: skip
    assignee = forms.ModelChoiceField(
        label=_("Assignee"), queryset=User.objects.none(), required=False, empty_label="—",
        help_text=_("Empty: the assignment rules choose the team and the agent."),
    )  # fmt: skip
    team = PinyinModelChoiceField(label=_("Team"), queryset=Team.objects.none(), required=False, empty_label="—")
    # the requester's language: the acknowledgement and the survey mails are written in it (Ticket.language)
    language = forms.ChoiceField(
        label=_("Customer's language"), choices=PreferredLanguage.choices, required=False,
        help_text=_("Preset from the chosen person's preferred language, else Simplified Chinese: the desk's own mails "
                    "to the customer (the survey among them) are written in it."),
    )  # fmt: skip
    # the language the page preset (and app.js along with the person chosen): sent back unchanged, the agent did not
    # choose one, and the chosen person's record decides — also when the person was chosen without JavaScript
    language_preset = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("received_at", timezone.localtime().replace(second=0, microsecond=0))
        self._set_up_pickers(user)
        if not self.is_bound:
            preset = self._preferred_language(self.initial.get("person")) or settings.LANGUAGE_CODE
            self.initial.setdefault("language", preset)
            self.initial["language_preset"] = self.initial["language"]
        person = self.fields["person"].widget
        person.languages = {str(p.pk): p.preferred_language for p in self.people_shown if p.preferred_language}
        person.attrs.update({"data-language-for": self["language"].auto_id,
                             "data-language-default": settings.LANGUAGE_CODE})  # fmt: skip
        self.fields["category"].queryset = categories()
        self.fields["product"].queryset = Product.objects.filter(active=True).order_by("brand_name", "strength")
        self.fields["assignee"].queryset = handlers()
        self.fields["team"].queryset = Team.objects.order_by("name")

    def _preferred_language(self, person_id) -> str:
        """The language on the record of a person the user may see, "" when it names none."""
        if not person_id or not is_id(person_id):
            return ""
        found = self.fields["person"].queryset.filter(pk=int(person_id)).values_list("preferred_language", flat=True)
        return next(iter(found), "") or ""

    def clean_received_at(self):
        value = self.cleaned_data.get("received_at")
        # a request taken in by hand was received lately: 2016 for 2026 is a typing error, not a call
        if value and value < timezone.now() - EARLIEST_BY_HAND:
            raise forms.ValidationError(
                _("A ticket taken in by hand was received within the last %(days)s days: check the year.")
                % {"days": EARLIEST_BY_HAND.days}
            )
        return value

    def clean(self):
        """A language left at the page's preset while another person was chosen (without JavaScript, which moves the
        select along with the person): the ticket would have taken the chosen person's language (else the site's)
        while the form showed the preset — and the acknowledgement goes out in it. The form is shown again with the
        select set to that language and the question under it, rather than either language taken silently."""
        data = super().clean()
        language, preset = data.get("language") or "", data.get("language_preset") or ""
        if not language or language != preset or "person" in self.errors:
            return data
        person = data.get("person")
        preferred = person.preferred_language if person is not None else ""
        follows = preferred or settings.LANGUAGE_CODE
        if follows == preset:
            return data
        named = dict(PreferredLanguage.choices).get(follows, follows)
        if preferred:
            asked = _("This was preset for another person: it is now the chosen person's preferred language, "
                      "%(language)s. Check it and create the ticket again.")  # fmt: skip
        else:
            asked = _("This was preset for another person: it is now the default, %(language)s. Check it and "
                      "create the ticket again.")  # fmt: skip
        self.add_error("language", asked % {"language": named})
        # shown again at the language it follows, which is the preset now: sent back unchanged, it is the ticket's
        self.data = self.data.copy()
        self.data["language"] = self.data["language_preset"] = follows
        return data

    def service_data(self) -> dict:
        d = self.cleaned_data
        out = {k: d.get(k) for k in (
            "institution", "person", "caller_name", "caller_phone", "channel", "category", "priority", "complexity",
            "priority_reason", "subject", "description", "batch_number", "assignee", "team", "product",
            "reply_email", "safety_relevant",
        )}  # fmt: skip
        out["received_at"] = d.get("received_at") or None
        # a language the agent chose; the preset left as it was: the chosen person's preferred language, else the
        # site's (services.create_ticket)
        language = d.get("language") or ""
        out["language"] = "" if language == (d.get("language_preset") or "") else language
        return out


def _person_label(p: Person) -> str:
    return f"{p.name} · {p.title}" if p.title else p.name


# --- ticket actions --------------------------------------------------------------------------------


def impact_field(label, help_text) -> forms.ChoiceField:
    """A complaint's impact on the customer or the company (services.transition asks for both on a complaint)."""
    return forms.ChoiceField(label=label, choices=BLANK + Impact.choices, required=False, help_text=help_text)


class TransitionForm(OwnIdsMixin, ServiceErrorsMixin, forms.Form):
    ids = "resolve"  # shown with the other forms on the ticket page
    to_status = forms.ChoiceField(choices=Status.choices, widget=forms.HiddenInput)
    resolution_summary = forms.CharField(
        label=_("Resolution summary"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Needed to resolve: what was done, and the answer given."),
    )  # fmt: skip
    root_cause = forms.ChoiceField(
        label=_("Root cause"), choices=BLANK + RootCause.choices, required=False,
        help_text=_("Needed to resolve: why the customer had to get in touch."),
    )  # fmt: skip
    customer_impact = impact_field(
        _("Impact on the customer"), _("Needed to resolve a complaint: the harm, cost or trouble it caused the customer.")
    )
    company_impact = impact_field(
        _("Impact on the company"), _("Needed to resolve a complaint: to our reputation, regulatory standing or finances.")
    )
    impact_note = forms.CharField(
        label=_("Impact assessment"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    informed_channel = forms.ChoiceField(
        label=_("Informed by"), choices=Channel.choices, required=False, initial=Channel.PHONE
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=500)
    version = forms.IntegerField(widget=forms.HiddenInput)


class ResponseForm(OwnIdsMixin, ServiceErrorsMixin, OnceTokenForm):  # its one-time token: sent twice, recorded once
    ids = "response"  # shown with the other forms on the ticket page (the reply composer has a token too)
    channel = forms.ChoiceField(label=_("Channel"), choices=Channel.choices, initial=Channel.PHONE)
    summary = forms.CharField(
        label=_("What was said"), required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )


class PriorityForm(ServiceErrorsMixin, forms.Form):
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)
    complexity = forms.ChoiceField(label=_("Complexity"), choices=Complexity.choices)
    reason = forms.CharField(
        label=_("Reason"), max_length=500, error_messages={"required": _("Give a reason for the change.")}
    )
    version = forms.IntegerField(widget=forms.HiddenInput)



class AssignForm(OwnIdsMixin, ServiceErrorsMixin, forms.Form):
    ids = "assign"  # shown with the other forms on the ticket page
    assignee = forms.ModelChoiceField(label=_("Assignee"), queryset=User.objects.none(), required=False)
    team = PinyinModelChoiceField(label=_("Team queue"), queryset=Team.objects.order_by("name"), required=False)
    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = handlers()


class PeriodField:
    """A filter form's `period` (2026-11, 2026-Q4 or 2026) as a performance.Period; empty: this month. Shared by
    the performance, complaint and quality pages."""

    def clean_period(self):
        from . import performance  # forms.py is read by views.py, which performance.py imports lazily

        raw = self.cleaned_data.get("period") or ""
        if not raw:
            return performance.current_period()
        try:
            return performance.parse_period(raw)
        except ValidationError as e:
            raise ValidationError(e.message_dict["period"]) from None
