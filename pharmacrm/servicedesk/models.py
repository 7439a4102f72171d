"""Service-desk data. So far: business calendars (工作日历) for SLA clocks — working windows, a time zone,
China's official holidays and 调休, and an administrator's overrides per date."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import workcalendar


def _validate_time_zone(value: str) -> None:
    try:
        workcalendar.WorkCalendar(time_zone=value, always_on=True)
    except workcalendar.CalendarError:
        raise ValidationError(_("“%(value)s” is not a known time zone."), params={"value": value}) from None


def default_windows() -> list[list[str]]:
    return [[s.strftime("%H:%M"), e.strftime("%H:%M")] for s, e in workcalendar.DEFAULT_WINDOWS]


def default_workdays() -> list[int]:
    return sorted(workcalendar.MONDAY_TO_FRIDAY)


class BusinessCalendar(models.Model):
    """A working calendar the SLA clocks run on (工作日历)."""

    code = models.SlugField(_("code"), max_length=40, unique=True)  # what policies and the API refer to
    name = models.CharField(_("name"), max_length=100, unique=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default=workcalendar.DEFAULT_TIME_ZONE, validators=[_validate_time_zone]
    )
    # [["08:30", "12:00"], ["13:30", "17:30"]]: several windows a day, in local time
    windows = models.JSONField(_("working windows"), default=default_windows, blank=True)
    workdays = models.JSONField(_("working weekdays"), default=default_workdays, blank=True)  # Monday = 0
    official_holidays = models.BooleanField(
        _("follow China's official holidays"), default=True,
        help_text=_("Public holidays and swapped working days (调休) as published by the State Council."),
    )  # fmt: skip
    always_on = models.BooleanField(_("24×7"), default=False, help_text=_("Every hour of every day counts."))
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("business calendar")
        verbose_name_plural = _("business calendars")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.engine(overrides={})
        except (workcalendar.CalendarError, ValueError, TypeError) as e:
            raise ValidationError({"windows": [_("These working windows are not valid: %(reason)s") % {"reason": e}]}) from None

    def engine(self, overrides: dict[dt.date, bool] | None = None) -> workcalendar.WorkCalendar:
        """The calendar as the clock arithmetic sees it (overrides read from the database unless given)."""
        if overrides is None:
            overrides = dict(self.overrides.values_list("date", "working"))
        return workcalendar.WorkCalendar(
            time_zone=self.time_zone,
            windows=tuple((_parse_time(s), _parse_time(e)) for s, e in (self.windows or [])),
            workdays=frozenset(int(d) for d in (self.workdays or [])),
            official_holidays=self.official_holidays,
            overrides=overrides,
            always_on=self.always_on,
        )


def _parse_time(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise workcalendar.CalendarError(f"{value!r} is not a time of day (HH:MM)") from None


class CalendarOverride(models.Model):
    """One date made a holiday or a working day on a calendar, whatever the official schedule says — for a
    year the chinese-calendar package does not know yet, a company holiday, or an extra working day."""

    calendar = models.ForeignKey(
        BusinessCalendar, models.CASCADE, related_name="overrides", verbose_name=_("calendar")
    )
    date = models.DateField(_("date"))
    working = models.BooleanField(_("working day"))
    note = models.CharField(_("note"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("calendar override")
        verbose_name_plural = _("calendar overrides")
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="calendar_override_once")]

    def __str__(self) -> str:
        return f"{self.date} {'+' if self.working else '-'}"
