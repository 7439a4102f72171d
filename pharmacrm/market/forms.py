"""The market pages' forms: they render and carry the input; services.py checks it and its errors are put under the
fields they name (ServiceErrorsMixin)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import access
from pharmacrm.core.ids import is_id
from pharmacrm.core.ordering import pinyin_sorted
from pharmacrm.customers.forms import BLANK, OnceTokenForm, ServiceErrorsMixin
from pharmacrm.customers.models import Institution
from pharmacrm.servicedesk.models import Product

from . import services
from .models import Competitor, CompetitorProduct, Importance, IntelKind, Source, VbpStatus

DATE = forms.DateInput(attrs={"type": "date"})
NUMBER = forms.TextInput(attrs={"inputmode": "decimal"})
TEXT = forms.Textarea(attrs={"rows": 3})
CUSTOMER_OPTIONS = 300  # the customers the intelligence form offers (those linked already come first)


class Base(ServiceErrorsMixin, forms.Form):
    MULTI: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False  # the service says what is missing, in the same words on the page and the API

    def values(self) -> dict:
        self.is_valid()
        return {k: (self.data.getlist(self.add_prefix(k)) if k in self.MULTI else self.data.get(self.add_prefix(k), ""))
                for k in self.fields if k != "form_token"}  # fmt: skip


def _products() -> list[tuple[str, str]]:
    return [(str(p.pk), str(p)) for p in pinyin_sorted(Product.objects.filter(active=True))]


def _competitor_products() -> list[tuple[str, str]]:
    labelled = [(str(p.pk), f"{p.company.name} · {p}")
                for p in CompetitorProduct.objects.filter(active=True).select_related("company")]  # fmt: skip
    return pinyin_sorted(labelled, label=lambda choice: choice[1])


class CompetitorForm(Base, OnceTokenForm):
    """A competitor: recorded (its one-time token: the form sent twice records one) or edited (its version)."""

    name = forms.CharField(label=_("Company"), max_length=100)
    notes = forms.CharField(label=_("Notes"), widget=TEXT)
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), initial=True)


class ProductForm(Base, OnceTokenForm):
    """A competitor product: recorded (its one-time token: the form sent twice records one) or edited (its
    version)."""

    MULTI = ("our_products",)
    company = forms.ChoiceField(label=_("Company"))
    generic_name = forms.CharField(label=_("Generic name"), max_length=100)
    brand_name = forms.CharField(label=_("Brand name"), max_length=100)
    dosage_form = forms.CharField(label=_("Dosage form"), max_length=40)
    strength = forms.CharField(label=_("Strength"), max_length=60)
    our_products = forms.MultipleChoiceField(label=_("Our products it competes with"))
    vbp_status = forms.ChoiceField(label=_("Volume-based procurement"), choices=VbpStatus.choices)
    vbp_batch = forms.CharField(label=_("Procurement batch"), max_length=60, help_text=_("For example 第十批."))
    reference_price = forms.CharField(label=_("Reference price (yuan)"), widget=NUMBER,
                                      help_text=_("Per unit; the share estimate multiplies it by the volume."))
    notes = forms.CharField(label=_("Notes"), widget=TEXT)
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), initial=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["company"].choices = BLANK + [(str(c.pk), c.name) for c in Competitor.objects.all()]
        self.fields["our_products"].choices = _products()

    def values(self) -> dict:
        out = super().values()
        out["active"] = self.data.get(self.add_prefix("active")) in ("on", "true", "1")
        return out


class PresenceForm(Base, OnceTokenForm):
    """An observation, appended (its one-time token: the form sent twice records it once)."""

    product = forms.ChoiceField(label=_("Competitor product"))
    monthly_volume = forms.CharField(label=_("Estimated monthly volume (units)"), widget=NUMBER)
    share = forms.CharField(label=_("Estimated share (%)"), widget=NUMBER, help_text=_("0 to 100."))
    observed_on = forms.CharField(label=_("Observed on"), widget=DATE)
    source = forms.ChoiceField(label=_("Source"), choices=BLANK + Source.choices)
    note = forms.CharField(label=_("Note"), widget=TEXT)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product"].choices = BLANK + _competitor_products()


class IntelligenceForm(Base, OnceTokenForm):
    """A piece of intelligence: recorded (its one-time token: the form sent twice records one) or edited (guarded by
    its version instead)."""

    MULTI = ("competitor_products", "our_products", "customers")
    kind = forms.ChoiceField(label=_("Kind"), choices=BLANK + IntelKind.choices)
    title = forms.CharField(label=pgettext_lazy("record title", "Title"), max_length=200)
    happened_on = forms.CharField(label=_("Date"), widget=DATE)
    importance = forms.ChoiceField(label=_("Importance"), choices=Importance.choices)
    province = forms.ChoiceField(label=_("Province"), help_text=_("Empty for the whole country."))
    source = forms.CharField(label=_("Source (text or web address)"), max_length=500)
    content = forms.CharField(label=_("Content"), widget=forms.Textarea(attrs={"rows": 6}))
    competitor_products = forms.MultipleChoiceField(label=_("Competitor products"))
    our_products = forms.MultipleChoiceField(label=_("Our products"))
    customers = forms.MultipleChoiceField(label=_("Customers"))

    def __init__(self, user, *args, linked=(), creating: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["form_token"]
        self.fields["province"].choices = BLANK + services.provinces()
        self.fields["competitor_products"].choices = _competitor_products()
        self.fields["our_products"].choices = _products()
        linked = [int(i) for i in linked if is_id(i)]
        first = list(Institution.objects.filter(pk__in=linked))
        rest = access.institutions_for(user, Institution.objects.active()).exclude(pk__in=linked)
        rest = rest.order_by("name_key", "id")[:CUSTOMER_OPTIONS]
        self.fields["customers"].choices = [(str(c.pk), c.name) for c in [*first, *rest]]


class IntelFilterForm(forms.Form):
    q = forms.CharField(label=_("Title or content"), required=False)
    kind = forms.ChoiceField(label=_("Kind"), choices=[("", _("Any"))] + IntelKind.choices, required=False)
    province = forms.ChoiceField(label=_("Province"), required=False)
    product = forms.ChoiceField(label=_("Competitor product"), required=False)
    ours = forms.ChoiceField(label=_("Our product"), required=False)
    start = forms.DateField(label=_("From"), required=False, widget=DATE)
    end = forms.DateField(label=_("To"), required=False, widget=DATE)
    importance = forms.ChoiceField(label=_("Importance"), choices=[("", _("Any"))] + Importance.choices,
                                   required=False)  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["province"].choices = [("", _("Any"))] + services.provinces()
        self.fields["product"].choices = [("", _("Any"))] + _competitor_products()
        self.fields["ours"].choices = [("", _("Any"))] + _products()


class AnalysisFilterForm(forms.Form):
    company = forms.ChoiceField(label=_("Company"), required=False)
    province = forms.ChoiceField(label=_("Province"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["company"].choices = [("", _("Any"))] + [(str(c.pk), c.name) for c in Competitor.objects.all()]
        self.fields["province"].choices = [("", _("Any"))] + services.provinces()
