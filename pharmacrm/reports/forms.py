from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.models import Team
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers.forms import BLANK, OnceTokenForm, ServiceErrorsMixin

from .kinds import offered
from .models import Frequency


class SubscriptionForm(ServiceErrorsMixin, OnceTokenForm):  # its one-time token: the form sent twice subscribes once
    report = forms.ChoiceField(label=_("Report"))
    frequency = forms.ChoiceField(
        label=pgettext_lazy("report schedule", "Frequency"), choices=Frequency.choices, initial=Frequency.MONTH
    )
    team = PinyinModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("All you may see"),
        help_text=_("Service performance and complaint analysis only."),
    )  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        kinds = offered(user)
        self.fields["report"].choices = BLANK + [(k.report, k.filename()) for k in kinds]
        teams = Team.objects.none()
        for kind in kinds:
            teams = teams | kind.teams(user)
        self.fields["team"].queryset = teams.distinct().order_by("name")
        if not self.fields["team"].queryset.exists():
            del self.fields["team"]
