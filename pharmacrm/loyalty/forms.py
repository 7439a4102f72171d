"""The loyalty pages' forms: they render and carry the input; services.py checks it and its errors are put under the
fields they name (ServiceErrorsMixin)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import access
from pharmacrm.core.models import User
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import BLANK, OnceTokenForm, ServiceErrorsMixin, region_children

from .models import Level, MemberStatus, Reward, RewardKind


class Base(ServiceErrorsMixin, forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = (
                False  # the service says what is missing, in the same words on the page and the API
            )

    def values(self) -> dict:
        self.is_valid()
        return {k: self.data.get(self.add_prefix(k), "") for k in self.fields if k != "form_token"}


class FilterForm(forms.Form):
    q = forms.CharField(label=_("Member number or customer"), required=False)
    level = forms.ChoiceField(label=_("Level"), choices=[("", _("Any"))] + Level.choices, required=False)
    status = forms.ChoiceField(
        label=_("Status"), choices=[("", _("Any"))] + MemberStatus.choices, required=False
    )
    province = forms.ChoiceField(label=_("Province"), required=False)
    owner = forms.ChoiceField(label=_("Owner"), required=False)

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["province"].choices = [("", _("Any"))] + region_children("")
        people = User.objects.filter(is_active=True).order_by("display_name", "username")
        self.fields["owner"].choices = [("", _("Anyone"))] + [
            (str(u.pk), str(u)) for u in people if access.can(u, Cap.MANAGE_LOYALTY)]  # fmt: skip


class RedeemForm(Base, OnceTokenForm):  # its one-time token: the form sent twice acts once
    reward = forms.ChoiceField(label=_("Reward"))
    quantity = forms.CharField(
        label=_("Quantity"), initial="1", widget=forms.TextInput(attrs={"inputmode": "numeric"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reward"].choices = BLANK + [
            (str(r.pk), f"{r.name} · {r.points_cost}") for r in Reward.objects.filter(active=True)]  # fmt: skip


class ReferForm(Base, OnceTokenForm):  # its one-time token: the form sent twice acts once
    referred = forms.CharField(label=_("Referred customer (id)"), widget=forms.TextInput(attrs={"inputmode": "numeric"}),
                               help_text=_("The customer's number in the CRM, as its page's address shows it."))  # fmt: skip
    note = forms.CharField(label=_("Note"), max_length=500)


class AdjustForm(Base, OnceTokenForm):  # its one-time token: the form sent twice acts once
    points = forms.CharField(label=_("Points"), widget=forms.TextInput(attrs={"inputmode": "numeric"}),
                             help_text=_("A whole number; negative to deduct."))  # fmt: skip
    reason = forms.CharField(label=_("Reason"), max_length=500)


class StatusForm(Base):
    status = forms.ChoiceField(label=_("Status"), choices=BLANK + MemberStatus.choices)
    reason = forms.CharField(label=_("Reason"), max_length=500)


class RewardForm(Base, OnceTokenForm):
    """A reward: added (its one-time token: the form sent twice adds one) or edited (its version)."""

    name = forms.CharField(label=_("Name"), max_length=100)
    kind = forms.ChoiceField(label=_("Kind"), choices=BLANK + RewardKind.choices)
    points_cost = forms.CharField(label=_("Points"), widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    value_cny = forms.CharField(
        label=_("Value (yuan)"), widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    stock = forms.CharField(label=_("Stock"), help_text=_("Empty for unlimited."),
                            widget=forms.TextInput(attrs={"inputmode": "numeric"}))  # fmt: skip
    active = forms.BooleanField(label=_("Offered"), initial=True)
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, creating: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["form_token"]

    def values(self) -> dict:
        out = super().values()
        out["active"] = self.add_prefix("active") in self.data
        return out
