"""Forms of the business-calendar settings pages: a calendar (time zone, working windows, weekdays, holiday
rule, 24×7) and one override of a date. What is stored is validated again by calendars.py (the services)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from django import forms
from django.core.exceptions import ValidationError
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext_lazy as _

from pharmacrm.core import builtin
from pharmacrm.customers.forms import OnceTokenForm

from .forms_routing import FieldErrorsMixin

WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–—~]\s*(\d{1,2}):(\d{2})$")


def time_zones(current: str = "") -> list[tuple[str, str]]:
    zones = set(zoneinfo.available_timezones()) - {"Factory", "localtime"}
    if current:
        zones.add(current)
    return [(z, z) for z in sorted(zones)]


def windows_text(windows) -> str:
    return "\n".join(f"{s}-{e}" for s, e in (windows or []))


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_windows(text: str) -> list[list[str]]:
    """`08:30-12:00` lines (or separated by commas) → [["08:30", "12:00"], …], sorted; a ValidationError
    naming the line that is wrong. A window may end at midnight, `24:00` (or `00:00`): stored as "24:00"."""
    out: list[tuple[int, int]] = []  # minutes of the day, an end at midnight 1440
    lines = [part.strip() for part in re.split(r"[\n,;，；]", text or "") if part.strip()]
    for number, line in enumerate(lines, 1):
        match = WINDOW.match(line)
        minutes = None
        if match:
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if h1 < 24 and m1 < 60 and (h2 < 24 and m2 < 60 or (h2, m2) == (24, 0)):
                end = h2 * 60 + m2
                minutes = h1 * 60 + m1, end or 24 * 60  # 00:00 as an end is midnight, as 24:00
        if minutes is None:
            raise ValidationError(
                _("Line %(number)d (“%(line)s”) is not a time range like 08:30-12:00."),
                params={"number": number, "line": line[:40]},
            )
        if not minutes[0] < minutes[1]:
            raise ValidationError(
                _("Line %(number)d (“%(line)s”) ends before it starts: a window lies within one day."),
                params={"number": number, "line": line[:40]},
            )
        out.append(minutes)
    out.sort()
    for (s1, e1), (s2, e2) in zip(out, out[1:], strict=False):
        if s2 < e1:
            raise ValidationError(
                _("The windows %(first)s and %(second)s overlap."),
                params={"first": f"{_hhmm(s1)}-{_hhmm(e1)}", "second": f"{_hhmm(s2)}-{_hhmm(e2)}"},
            )
    return [[_hhmm(s), _hhmm(e)] for s, e in out]


class CalendarForm(FieldErrorsMixin, OnceTokenForm):  # its one-time token: the new form sent twice creates one
    code = forms.SlugField(
        label=_("Code"), max_length=40,
        help_text=_("What SLA policies and the API refer to: letters, digits, - and _; it cannot change later."),
    )  # fmt: skip
    name = forms.CharField(label=_("Name"), max_length=100)
    time_zone = forms.ChoiceField(label=_("Time zone"), initial="Asia/Shanghai")
    windows = forms.CharField(
        label=_("Working windows"), required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "08:30-12:00\n13:30-17:30"}),
        help_text=_("One window per line, from-to in local time, e.g. 08:30-12:00; 24:00 is midnight, the end of the day."),
    )  # fmt: skip
    workdays = forms.TypedMultipleChoiceField(
        label=_("Working weekdays"), required=False, coerce=int, widget=forms.CheckboxSelectMultiple,
        choices=[(i, WEEKDAYS_ABBR[i]) for i in range(7)],
    )  # fmt: skip
    official_holidays = forms.BooleanField(
        label=_("Follow China's official holidays"), required=False, initial=True,
        help_text=_("Public holidays and swapped working days (调休) as published by the State Council."),
    )  # fmt: skip
    always_on = forms.BooleanField(
        label=_("24×7"),
        required=False,
        help_text=_("Every hour of every day counts; windows and weekdays are ignored."),
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, calendar=None, **kwargs):
        super().__init__(*args, **kwargs)
        builtin.note_on_form(self)
        self.calendar = calendar
        self.fields["time_zone"].choices = time_zones(calendar.time_zone if calendar else "")
        if calendar is not None:
            del self.fields["code"]
            self.fields["version"].required = True

    def clean_code(self):
        code = self.cleaned_data["code"]
        if code == "new":  # the address of the "new calendar" page
            raise ValidationError(_("“new” cannot be a calendar's code."))
        return code

    def clean_windows(self):
        return parse_windows(self.cleaned_data.get("windows") or "")

    def clean_workdays(self):
        return sorted(set(self.cleaned_data.get("workdays") or []))

    def clean(self):
        data = super().clean()
        if not data.get("always_on"):  # the service says so too, but only after the model's terser check
            if "windows" in data and not data["windows"]:
                self.add_error("windows", _("Give at least one working window, or make the calendar 24×7."))
            if "workdays" in data and not data["workdays"]:
                self.add_error("workdays", _("Give at least one working weekday, or make the calendar 24×7."))
        return data

    def service_data(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k not in ("version", "form_token")}

    @staticmethod
    def initial_for(calendar) -> dict:
        return {
            "name": calendar.name, "time_zone": calendar.time_zone, "windows": windows_text(calendar.windows),
            "workdays": [int(d) for d in calendar.workdays or []], "official_holidays": calendar.official_holidays,
            "always_on": calendar.always_on, "version": calendar.version,
        }  # fmt: skip


class OverrideForm(OnceTokenForm):  # its one-time token: "Add" clicked twice adds once, not a stale-page conflict
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    until = forms.DateField(
        label=_("Until (optional)"), required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("The last date of a holiday period (e.g. the Spring Festival week): every date from the first "
                    "to this one gets the override."),
    )  # fmt: skip
    working = forms.TypedChoiceField(
        label=_("This date is"), coerce=lambda v: v == "1", widget=forms.RadioSelect, initial="0",
        choices=[("0", _("a holiday")), ("1", _("a working day"))],
    )  # fmt: skip
    note = forms.CharField(
        label=_("Note"), required=False, max_length=100, help_text=_("e.g. 春节 or 春节调休")
    )
    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, year: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.year = year
        for name in ("date", "until"):
            self.fields[name].widget.attrs.update(min=f"{year:04d}-01-01", max=f"{year:04d}-12-31")

    def clean_date(self):
        day = self.cleaned_data["date"]
        if day.year != self.year:
            raise ValidationError(_("Pick a date in %(year)d."), params={"year": self.year})
        return day

    def clean_until(self):
        day = self.cleaned_data.get("until")
        if day is not None and day.year != self.year:
            raise ValidationError(_("Pick a date in %(year)d."), params={"year": self.year})
        return day

    def clean(self):
        data = super().clean()
        first, last = data.get("date"), data.get("until")
        if first is not None and last is not None:
            from .calendars import MAX_OVERRIDE_DAYS

            if last < first:
                self.add_error("until", _("The last date cannot lie before the first date."))
            elif (last - first).days + 1 > MAX_OVERRIDE_DAYS:
                self.add_error("until", _("At most %(days)d dates at once.") % {"days": MAX_OVERRIDE_DAYS})
        return data

    def days(self) -> list[dt.date]:
        """The dates the override is for: the date, or each date from it to `until`."""
        first = self.cleaned_data["date"]
        last = self.cleaned_data.get("until") or first
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


class RemoveOverrideForm(forms.Form):
    date = forms.DateField()
    version = forms.IntegerField()
