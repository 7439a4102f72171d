"""Interaction forms: the list filters and the record/edit form (validation delegated to
engagement.services). Selects offer only the customers the user may see."""

from __future__ import annotations

from django import forms
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import access
from pharmacrm.core.forms import TypedWholeNumberField
from pharmacrm.core.ids import is_id
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers.forms import ANY, ServiceErrorsMixin, _limit_picker
from pharmacrm.customers.models import Institution, Person
from pharmacrm.servicedesk.forms import LOCAL_INPUT, CustomerPickers, _person_label
from pharmacrm.servicedesk.models import Product

from .models import InteractionChannel


class InteractionFilterForm(forms.Form):
    mine = forms.BooleanField(label=_("Only mine"), required=False)
    channel = forms.ChoiceField(label=_("Channel"), choices=ANY + InteractionChannel.choices, required=False)
    institution = forms.ModelChoiceField(
        label=_("Institution"), queryset=Institution.objects.none(), required=False, empty_label=_("Any"),
        error_messages={"invalid_choice": _(
            "No institution %(value)s among the customers you may see: no interactions are listed for it."
        )},
    )  # fmt: skip

    person = forms.ModelChoiceField(
        label=_("Person"), queryset=Person.objects.none(), required=False, empty_label=_("Any"),
        error_messages={"invalid_choice": _(
            "No person %(value)s among the customers you may see: no interactions are listed for them."
        )},
    )  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["institution"].queryset = access.institutions_for(user, Institution.objects.active())
        _limit_picker(self.fields["institution"], [self.data.get("institution")])
        self.fields["institution"].picker = True  # the filter bar adds the search box that finds the others
        # a person's interactions ("All interactions" on a person's page): offered only when asked for, with
        # that person as the one choice besides "Any"
        person_id = self.data.get("person")
        if person_id:  # a value that is no person's id is refused under the field, as a person out of reach
            people = access.people_for(user, Person.objects.all())
            self.fields["person"].queryset = people
            self.fields["person"].widget.choices = list(ANY) + [
                (p.pk, p.name) for p in (people.filter(pk=int(person_id)).only("id", "name") if is_id(person_id) else ())
            ]
        else:
            del self.fields["person"]

    def cleaned(self) -> dict:
        """The valid filter values. An invalid one (an institution or a person that does not exist, or that the
        user may not see, a channel there is not) is not ignored: it stays in `errors`, shown under its field, and
        the list shows nothing until it is corrected (`has_errors`) — ignored, it listed every interaction as if
        they were that hospital's, as the API answers such a filter with a 400 or an empty list."""
        self.is_valid()
        return getattr(self, "cleaned_data", {}) or {}

    @property
    def has_errors(self) -> bool:
        return self.is_bound and bool(self.errors)


class InteractionForm(ServiceErrorsMixin, CustomerPickers):
    channel = forms.ChoiceField(
        label=_("Channel"), choices=InteractionChannel.choices, initial=InteractionChannel.VISIT
    )
    received_at = forms.DateTimeField(
        label=_("When"), required=False, input_formats=[LOCAL_INPUT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT),
        help_text=_("When you heard it: this is day 0 for any reaction mentioned."),
    )  # fmt: skip
    subject = forms.CharField(label=_("Subject"), max_length=200)
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=20000, widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("What the customer said. Any mention of a side effect or a quality problem is passed to "
                    "pharmacovigilance."),
    )  # fmt: skip
    product = PinyinModelChoiceField(
        label=_("Product"), queryset=Product.objects.none(), required=False, empty_label="—"
    )
    safety_relevant = forms.BooleanField(
        label=_("Safety-relevant"), required=False,
        help_text=_("A possible adverse reaction or quality problem: pharmacovigilance is told."),
    )  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, user, options_url: str = "", interaction=None, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("received_at", timezone.localtime().replace(second=0, microsecond=0))
        # the ticket's pickers: choosing an institution reloads the person select with its people
        self.options_url = options_url or reverse("engagement:interaction-create")
        self._set_up_pickers(user, self.options_url)
        # editing: a product discontinued since the visit stays its product, so the rest can still be corrected
        kept = Q(pk=interaction.product_id) if interaction is not None and interaction.product_id else Q(pk__in=[])
        self.fields["product"].queryset = Product.objects.filter(Q(active=True) | kept).order_by(
            "brand_name", "strength"
        )
        if interaction is not None:
            self._keep_customers(interaction)

    def _keep_customers(self, interaction) -> None:
        """Editing: the interaction's own customers stay choices even when they are no longer in the user's
        territory (a rep moved to another region corrects the notes of a visit made before)."""
        for key, model in (("institution", Institution), ("person", Person)):
            pk = getattr(interaction, f"{key}_id")
            field = self.fields[key]
            if pk is None or field.queryset.filter(pk=pk).exists():
                continue
            field.queryset = field.queryset | model.objects.filter(pk=pk)
            if key == "institution":
                _limit_picker(field, [self.data.get(key) if self.is_bound else pk])
            else:
                field.widget.choices = [*field.widget.choices[:1], (pk, _person_label(interaction.person)),
                                        *field.widget.choices[1:]]  # fmt: skip

    def service_data(self, *, editing: bool = False, stored_at=None) -> dict:
        """The values for engagement.services. `stored_at` (editing) is the interaction's time: the field shows
        it to the minute, so the same minute sent back means "unchanged", not "moved to hh:mm:00" (which a
        flagged interaction refuses: its time is day 0)."""
        d = self.cleaned_data
        out = {k: d.get(k) for k in ("institution", "person", "channel", "subject", "notes", "product",
                                     "safety_relevant")}  # fmt: skip
        at = d.get("received_at")
        if editing and at and stored_at and _same_minute(at, stored_at):
            at = None
        if at or not editing:  # empty: now for a new one, unchanged for an edit
            out["received_at"] = at or None
        return out


def _same_minute(a, b) -> bool:
    return timezone.localtime(a).replace(second=0, microsecond=0) == timezone.localtime(b).replace(
        second=0, microsecond=0
    )


# --- communication plans ------------------------------------------------------------------------------------


def _kind_choices():
    from pharmacrm.customers.choices import InstitutionType

    return [c for c in InstitutionType.choices if c[0] != InstitutionType.DEPARTMENT]


def _tier_choices():
    from pharmacrm.customers.choices import Tier

    return list(Tier.choices)


CLASS_CHOICES = [("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")]


class PlanForm(forms.Form):
    year = TypedWholeNumberField(label=_("Year"))
    klass = forms.ChoiceField(label=_("Customer class"), required=False, help_text=_(
        "The class in the customer evaluation in force; empty: every class."))  # fmt: skip
    tier = forms.ChoiceField(label=_("Tier"), required=False)
    institution_kind = forms.ChoiceField(label=_("Institution type"), required=False)
    goal = forms.CharField(label=_("Goal"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    # the version loaded: a change saved from an older one (a colleague saved meanwhile) is refused
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        every = [("", _("Any"))]
        self.fields["klass"].choices = every + CLASS_CHOICES
        self.fields["tier"].choices = every + _tier_choices()
        self.fields["institution_kind"].choices = every + _kind_choices()


class PlanLineForm(forms.Form):
    channel = forms.ChoiceField(label=_("Channel"), required=False, choices=[("", "—"), *InteractionChannel.choices])
    minimum = TypedWholeNumberField(label=_("Contacts at least"), required=False)
    period = forms.ChoiceField(label=_("Period"), required=False)
    note = forms.CharField(label=_("Note"), required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        from .models import PlanPeriod

        super().__init__(*args, **kwargs)
        self.fields["period"].choices = [("", "—"), *PlanPeriod.choices]

    def line(self) -> dict | None:
        """The line typed, or None for an empty row."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        if not any(data.get(k) not in (None, "") for k in ("channel", "minimum", "period", "note")):
            return None
        return {k: data.get(k) for k in ("channel", "minimum", "period", "note")}


PlanLineFormSet = forms.formset_factory(PlanLineForm, extra=3, max_num=12, absolute_max=12)
