"""Forms of the notification pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .models import Delivery, WebhookEndpoint


class EndpointForm(forms.Form):
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)  # the one loaded: a stale save is refused
    name = forms.CharField(label=_("Name"), max_length=100)
    url = forms.CharField(
        label=_("URL"),
        max_length=500,
        help_text=_("The receiver's http:// or https:// address (for a bot: its webhook address)."),
    )
    format = forms.ChoiceField(label=_("Format"), choices=WebhookEndpoint.Format.choices)
    events = forms.CharField(
        label=_("Events"), required=False, max_length=2000,
        help_text=_("Event names separated by commas, e.g. ticket.created, ticket.breached; empty: every event."),
    )  # fmt: skip
    secret = forms.CharField(
        label=_("Signing secret"), required=False, max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Empty: keep the current one (a new endpoint gets a generated one). For a DingTalk bot with "
                    "signing, paste its SEC… secret."),
    )  # fmt: skip
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False, initial=True)

    def data_dict(self) -> dict:
        d = dict(self.cleaned_data)
        d.pop("version", None)
        d["url"] = d["url"].strip()
        return d


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any status"))] + list(Delivery.Status.choices)
    )
    channel = forms.ChoiceField(
        label=_("Channel"), required=False, choices=[("", _("Any channel"))] + list(Delivery.Channel.choices)
    )
    # an endpoint's "Deliveries": kept when a status or channel is applied, not lost for every endpoint's log
    endpoint = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)
