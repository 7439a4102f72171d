"""The channel effect page (/interactions/channels/, 沟通渠道效果) and its Excel export: channels.py computes, this
module reads the filters and shows the figures (api_channels.py answers GET /api/v1/engagement/channels/)."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from pharmacrm.core import audit, downloads
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.numbers import percent_text
from pharmacrm.sales.models import yuan
from pharmacrm.sales.views import money
from pharmacrm.servicedesk import performance

from . import channels

A = AuditEntry.Action


class ChannelForm(forms.Form):
    period = forms.CharField(label=gettext_lazy("Period"), required=False)
    window = forms.TypedChoiceField(label=gettext_lazy("Days after the contact"), required=False, coerce=int,
                                    choices=[(w, w) for w in channels.WINDOWS], initial=channels.DEFAULT_WINDOW)  # fmt: skip
    scope = forms.ChoiceField(label=gettext_lazy("Whose customers"), required=False, initial="all")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scope"].choices = channels.scope_choices()
        # any period is accepted (the API's and an old bookmark's); the page offers the recent ones
        self.fields["period"].widget = forms.Select(
            choices=[("", _("Latest month judged in full")), *performance.period_choices()])

    def clean_period(self):
        raw = self.cleaned_data.get("period") or ""
        if not raw.strip():
            return None
        try:
            return performance.parse_period(raw)
        except ValidationError:
            raise ValidationError(performance.period_error()) from None

    def query(self) -> channels.Query:
        """The query of the valid fields; a field with an error falls back to its default (and shows the error)."""
        data = self.cleaned_data if self.is_bound else {}
        window = data.get("window") or channels.DEFAULT_WINDOW
        period = data.get("period") or channels.default_period(window)
        return channels.Query(period=period, window=window, scope=data.get("scope") or "all")


def _require(user) -> None:
    if not channels.may_see(user):
        raise PermissionDenied


def _form(request) -> tuple[ChannelForm, channels.Query]:
    data = None
    if request.GET:  # a field left out shows (and applies) its default, not the select's first option
        data = request.GET.copy()
        for name, value in (("window", channels.DEFAULT_WINDOW), ("scope", "all")):
            if not data.get(name):
                data[name] = str(value)
    form = ChannelForm(data)
    if form.is_bound:
        form.is_valid()
    return form, form.query()


def _percent(value) -> str:
    return percent_text(value)


def _signed(value) -> str:
    return "—" if value is None else f"{value:+.1f}"


def _cells(f: channels.Figures) -> dict:
    """What a row shows: "—" where a figure has nothing to stand on (no contacts, no customer judged yet)."""
    judged = bool(f.judged)
    return {
        "channel": f.channel, "label": f.label, "contacts": f.contacts, "share": _percent(f.share),
        "customers": f.customers, "people": f.people, "per_customer": "—" if f.per_customer is None else f.per_customer,
        "judged": f.judged, "open": f.open, "ordered": f.ordered if judged else "—", "conversion": _percent(f.conversion),
        "previous_conversion": _percent(f.previous_conversion), "conversion_change": _signed(f.conversion_change),
        "advanced": f.advanced if judged else "—", "advance_rate": _percent(f.advance_rate),
        "before": money(yuan(f.before_fen)) if judged else "—", "after": money(yuan(f.after_fen)) if judged else "—",
        "change": _percent(f.change),
    }  # fmt: skip


@login_required
@require_GET
def channels_page(request):
    _require(request.user)
    form, query = _form(request)
    rep = channels.report(request.user, query)
    chart = {
        "channels": [r.label for r in rep.rows],
        "customers": [r.customers for r in rep.rows],
        "conversion": [r.conversion for r in rep.rows],
        "names": [_("Customers reached"), _("Conversion (%)")],
    }
    params = request.GET.copy()
    context = {
        "form": form, "query": query, "report": rep, "rows": [_cells(r) for r in rep.rows], "total": _cells(rep.total),
        "chart": chart,
        "min_channels": channels.MIN_CHANNELS, "query_string": params.urlencode(), "definitions": definitions(query.window),
        "final_on": channels.final_on(query.period, query.window),
    }  # fmt: skip
    return render(request, "engagement/channels.html", context, status=400 if form.errors else 200)


HEADERS = (
    gettext_lazy("Channel"), gettext_lazy("Contacts"), gettext_lazy("Share of contacts (%)"),
    gettext_lazy("Customers reached"), gettext_lazy("People reached"), gettext_lazy("Contacts per customer"),
    gettext_lazy("Customers judged"), gettext_lazy("Window still open"), gettext_lazy("Ordered in the window"),
    gettext_lazy("Conversion (%)"), gettext_lazy("Conversion, period before (%)"),
    gettext_lazy("Opportunities opened or moved forward"), gettext_lazy("Purchases before (¥)"),
    gettext_lazy("Purchases after (¥)"), gettext_lazy("Change (%)"),
)  # fmt: skip


def _sheet_row(f: channels.Figures) -> list:
    judged = bool(f.judged)
    return [f.label, f.contacts, f.share, f.customers, f.people, f.per_customer, f.judged, f.open,
            f.ordered if judged else None, f.conversion, f.previous_conversion, f.advanced if judged else None,
            float(yuan(f.before_fen)) if judged else None, float(yuan(f.after_fen)) if judged else None, f.change]  # fmt: skip


@login_required
@require_GET
def channels_export(request):
    """The page's figures as an Excel workbook (audited)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    _require(request.user)
    form, query = _form(request)
    rep = channels.report(request.user, query)
    book = Workbook()
    sheet = book.active
    sheet.title = _("Channel effect")[:31]
    sheet.append([_("Period"), query.period.key, _("Days after the contact"), query.window,
                  _("Whose customers"), dict(channels.scope_choices())[query.scope]])  # fmt: skip
    sheet.append([_("Figures as of %(day)s.") % {"day": rep.today.isoformat()}])
    sheet.append([])
    sheet.append([str(h) for h in HEADERS])
    for cell in sheet[4]:
        cell.font = Font(bold=True)
    for f in (*rep.rows, rep.total):
        downloads.append_row(sheet, _sheet_row(f))
    sheet.append([])
    for line in definitions(query.window):
        sheet.append([line])
    content = downloads.workbook_bytes(book)
    audit.record(A.EXPORT, ("engagement.interaction", "", "channel effect"), user=request.user, format="XLSX",
                 period=query.period.key, window=query.window, scope=query.scope)  # fmt: skip
    return downloads.xlsx(content, _("Channel effect"), query.period.key, dated=False)


def definitions(window: int) -> list[str]:
    """How each figure is counted: the page's last section and the export's last rows."""
    return [
        _("Contacts: the interactions recorded through the channel in the period (Beijing days). Customers reached: "
          "the customers they were with, a hospital counting for its departments and its doctors. Share: of all the "
          "period's contacts."),
        _("Window: %(days)s days from a customer's first contact through the channel in the period, that day "
          "included. A customer is judged once its window has ended; one contacted more recently is counted under "
          "\"window still open\" and left out of the figures below.") % {"days": window},
        _("Ordered in the window: the judged customers with an order line of a positive amount dated in their "
          "window (the ERP's order date; a return is no purchase); conversion: over the judged customers. Purchases "
          "before and after: the order amounts of the %(days)s days before the first contact and of the window, "
          "returns subtracted, summed over the judged customers.")
        % {"days": window},
        _("Opportunities: the judged customers with an opportunity you may see opened or moved to a later stage (or "
          "won) in their window."),
        _("A customer reached through several channels counts for each; the \"all channels\" row counts it once, "
          "from its first contact through any channel. What follows a contact is not proven to be caused by it: "
          "compare channels, do not attribute sales."),
    ]  # fmt: skip


urlpatterns = [  # included by urls.py under /interactions/
    path("channels/", channels_page, name="channels"),
    path("channels/export.xlsx", channels_export, name="channels-export"),
]
