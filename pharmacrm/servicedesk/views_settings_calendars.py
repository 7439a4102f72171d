"""Service-desk settings pages for business calendars: the list (with the warning for a year without
holidays), create and edit, and per calendar a year's overrides next to China's official schedule as the
chinese-calendar package knows it. Every write goes through calendars.py (capability, validation,
version, audit)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import chinese_calendar
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access
from pharmacrm.core.form_saves import SENT_AGAIN, create_once, sent_again
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import calendars, workcalendar
from .forms_settings_calendars import CalendarForm, OverrideForm, RemoveOverrideForm, windows_text
from .models import BusinessCalendar, CalendarOverride

FIRST_YEAR, LAST_YEAR = 2000, 2100
CONFLICT = gettext_lazy(
    "Someone else changed this calendar while you were working on it. Your input is kept: check the "
    "calendar, then submit again."
)


def _manage(request) -> None:
    access.require(request.user, Cap.MANAGE_SERVICE)


def weekdays_text(workdays) -> str:
    return " ".join(str(WEEKDAYS_ABBR[int(d)]) for d in sorted(workdays or []))


# --- list, create, edit --------------------------------------------------------------------------------


@login_required
def calendar_list(request):
    _manage(request)
    rows = list(BusinessCalendar.objects.order_by("name"))
    for cal in rows:
        cal.windows_text = ", ".join(f"{s}–{e}" for s, e in (cal.windows or []))
        cal.weekdays_text = weekdays_text(cal.workdays)
    context = {"calendars": rows, "gaps": calendars.coverage_gaps(), "year": timezone.localdate().year}
    return render(request, "servicedesk/settings/calendar_list.html", context)


def _form_page(request, form, calendar, status):
    context = {"form": form, "calendar": calendar, "year": timezone.localdate().year}
    return render(request, "servicedesk/settings/calendar_form.html", context, status=status)


@login_required
def calendar_create(request):
    _manage(request)
    form = CalendarForm(request.POST if request.method == "POST" else None,
                        initial={"windows": windows_text([["08:30", "12:00"], ["13:30", "17:30"]]),
                                 "workdays": [0, 1, 2, 3, 4], "official_holidays": True})  # fmt: skip
    if request.method != "POST":
        return _form_page(request, form, None, 200)
    if form.is_valid():
        try:  # once per form: sent again (a double click), it leads to the calendar the first one created
            cal = create_once(request.user, request.POST.get("form_token"),
                              lambda: calendars.create_calendar(request.user, form.service_data()))  # fmt: skip
        except AlreadyCreated as e:
            return sent_again(request, BusinessCalendar, e.pk, reverse("servicedesk:settings-calendars"),
                              page_of=lambda c: reverse("servicedesk:settings-calendar-edit", args=[c.code]))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The calendar “%(name)s” was created.") % {"name": cal.label})
            return redirect("servicedesk:settings-calendars")
    return _form_page(request, form, None, 400)


@login_required
def calendar_edit(request, code: str):
    _manage(request)
    cal = get_object_or_404(BusinessCalendar, code=code)
    if request.method != "POST":
        return _form_page(
            request, CalendarForm(initial=CalendarForm.initial_for(cal), calendar=cal), cal, 200
        )
    form = CalendarForm(request.POST, calendar=cal)
    if form.is_valid():
        try:
            calendars.update_calendar(
                request.user, cal, form.service_data(), version=form.cleaned_data["version"]
            )
        except ConflictError:
            cal = BusinessCalendar.objects.get(pk=cal.pk)
            data = request.POST.copy()
            data["version"] = str(cal.version)
            form = CalendarForm(data, calendar=cal)
            form.is_valid()
            form.add_error(None, str(CONFLICT))
            return _form_page(request, form, cal, 409)
        except ValidationError as e:
            cal = BusinessCalendar.objects.get(pk=cal.pk)  # the service set the refused values on it
            form.add_service_errors(e)
        else:
            messages.success(request, _("The calendar “%(name)s” was saved.") % {"name": cal.label})
            return redirect("servicedesk:settings-calendars")
    return _form_page(request, form, cal, 400)


# --- a year's overrides --------------------------------------------------------------------------------


@dataclass
class Period:
    name: str
    first: dt.date
    last: dt.date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


# The package carries each holiday's Simplified name; Traditional Chinese pages read these
HANT_HOLIDAYS = {
    "元旦": "元旦", "春节": "春節", "清明": "清明", "劳动节": "勞動節", "端午": "端午", "国庆节": "國慶節", "中秋": "中秋",
    "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日": "中國人民抗日戰爭暨世界反法西斯戰爭勝利70週年紀念日",
}


def holiday_name(english: str) -> str:
    """The package's holiday name in the page's language (it carries the Chinese name itself)."""
    holiday = next((h for h in chinese_calendar.Holiday if h.value == english), None)
    language = (translation.get_language() or "").lower()
    if holiday is not None and language.startswith("zh-hant"):
        return HANT_HOLIDAYS.get(holiday.chinese, holiday.chinese)
    if holiday is not None and language.startswith("zh"):
        return holiday.chinese
    return english


def official_schedule(year: int) -> tuple[list[Period], list[tuple[dt.date, str]]] | None:
    """The year's official holidays (as periods of consecutive days) and swapped working days, or None
    for a year the installed chinese-calendar package does not cover."""
    if year not in workcalendar.official_years():
        return None
    periods: list[Period] = []
    for day, name in sorted((d, n) for d, n in chinese_calendar.holidays.items() if d.year == year):
        label = holiday_name(name)
        if periods and periods[-1].name == label and periods[-1].last + dt.timedelta(days=1) == day:
            periods[-1].last = day
        else:
            periods.append(Period(label, day, day))
    swapped = sorted((d, holiday_name(n)) for d, n in chinese_calendar.workdays.items() if d.year == year)
    return periods, swapped


def _calendar_year(code: str, year: int) -> BusinessCalendar:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise Http404(
            _("Choose a year between %(first)d and %(last)d.") % {"first": FIRST_YEAR, "last": LAST_YEAR}
        )
    return get_object_or_404(BusinessCalendar, code=code)


def _year_page(request, cal, year, form=None, status=200, conflict=False):
    schedule = official_schedule(year)
    known = workcalendar.official_years()
    context = {
        "calendar": cal, "year": year, "previous": year - 1 if year > FIRST_YEAR else None,
        "next": year + 1 if year < LAST_YEAR else None,
        "overrides": list(cal.overrides.filter(date__year=year).order_by("date")),
        "form": form or OverrideForm(initial={"version": cal.version}, year=year),
        "schedule": schedule, "holidays": schedule[0] if schedule else [], "swapped": schedule[1] if schedule else [],
        "known_first": known.start, "known_last": known.stop - 1,
        "statutory": sorted(workcalendar.statutory_days(year, translation.get_language() or "en").items()),
        "covered": calendars.engine(cal).covers(year), "conflict": CONFLICT if conflict else "",
    }  # fmt: skip
    return render(request, "servicedesk/settings/calendar_year.html", context, status=status)


@login_required
def calendar_year(request, code: str, year: int):
    _manage(request)
    return _year_page(request, _calendar_year(code, year), year)


def _locked(cal: BusinessCalendar, version: int) -> BusinessCalendar:
    """The calendar row locked for this transaction; ConflictError when it moved since the page was read."""
    current = BusinessCalendar.objects.select_for_update().get(pk=cal.pk)
    if current.version != version:
        raise ConflictError(current.version)
    return current


def _conflict(request, code, year, kept: bool):
    """The year page again after someone else changed the calendar (409), with the add form's input kept."""
    cal = _calendar_year(code, year)
    form = None
    if kept:
        data = request.POST.copy()
        data["version"] = str(cal.version)
        form = OverrideForm(data, year=year)
        form.is_valid()
    return _year_page(request, cal, year, form, status=409, conflict=True)


@login_required
def override_add(request, code: str, year: int):
    _manage(request)
    if request.method != "POST":
        return redirect("servicedesk:settings-calendar-year", code=code, year=year)
    cal = _calendar_year(code, year)
    form = OverrideForm(request.POST, year=year)
    if not form.is_valid():
        return _year_page(request, cal, year, form, status=400)
    d = form.cleaned_data
    days = form.days()

    def add():
        with transaction.atomic():
            locked = _locked(cal, d["version"])
            calendars.set_overrides(request.user, locked, days, d["working"], d["note"])
        return locked

    try:  # once per form: sent again (a double click), the year as the first one left it, not a stale-page conflict
        cal = create_once(request.user, d["form_token"], add)
    except AlreadyCreated:
        messages.info(request, SENT_AGAIN)
        return redirect("servicedesk:settings-calendar-year", code=code, year=year)
    except ConflictError:
        return _conflict(request, code, year, kept=True)
    except ValidationError as e:
        form.add_error(None, e)
        return _year_page(request, cal, year, form, status=400)
    if len(days) > 1:
        label = _("working days") if d["working"] else _("holidays")
        text = _("%(first)s to %(last)s (%(count)d dates) are now %(kind)s on this calendar.") % {
            "first": days[0], "last": days[-1], "count": len(days), "kind": label,
        }  # fmt: skip
    else:
        label = _("a working day") if d["working"] else _("a holiday")
        text = _("%(date)s is now %(kind)s on this calendar.") % {"date": d["date"], "kind": label}
    messages.success(request, text)
    return redirect("servicedesk:settings-calendar-year", code=code, year=year)


@login_required
def override_remove(request, code: str, year: int):
    _manage(request)
    if request.method != "POST":
        return redirect("servicedesk:settings-calendar-year", code=code, year=year)
    cal = _calendar_year(code, year)
    form = RemoveOverrideForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Nothing was removed: the request was incomplete."))
        return redirect("servicedesk:settings-calendar-year", code=code, year=year)
    day = form.cleaned_data["date"]
    try:
        with transaction.atomic():
            cal = _locked(cal, form.cleaned_data["version"])
            removed = calendars.remove_override(request.user, cal, day)
    except ConflictError:
        if not CalendarOverride.objects.filter(calendar=cal, date=day).exists():
            # gone already (the button clicked twice: the first removal moved the version): nothing to conflict on
            messages.info(request, _("The override of %(date)s was removed already.") % {"date": day})
            return redirect("servicedesk:settings-calendar-year", code=code, year=year)
        return _conflict(request, code, year, kept=False)
    if removed:
        messages.success(request, _("The override of %(date)s was removed.") % {"date": day})
    return redirect("servicedesk:settings-calendar-year", code=code, year=year)


urlpatterns = [  # included by urls.py under /service/
    path("settings/calendars/", calendar_list, name="settings-calendars"),
    path("settings/calendars/new/", calendar_create, name="settings-calendar-create"),
    path("settings/calendars/<slug:code>/", calendar_edit, name="settings-calendar-edit"),
    path("settings/calendars/<slug:code>/<int:year>/", calendar_year, name="settings-calendar-year"),
    path("settings/calendars/<slug:code>/<int:year>/add/", override_add, name="settings-calendar-override-add"),
    path("settings/calendars/<slug:code>/<int:year>/remove/", override_remove,
         name="settings-calendar-override-remove"),
]  # fmt: skip
