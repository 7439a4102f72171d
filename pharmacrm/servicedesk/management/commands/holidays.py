"""`pharmacrm holidays`: the holiday schedule of a business calendar, for operators.

    pharmacrm holidays check                       # years without holiday data (exit status 1 if any)
    pharmacrm holidays list --year 2027            # the year's days off and swapped working days
    pharmacrm holidays set 2027-02-05..2027-02-11 --off --note 春节
    pharmacrm holidays set 2027-02-13 --on --note 春节调休
    pharmacrm holidays unset 2027-02-13

Each change is audited (the operating-system account is the actor). Dates take `YYYY-MM-DD` or a range
`FROM..TO` (both included)."""

from __future__ import annotations

import argparse
import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from pharmacrm.core.management.commands._ops import cli_actor
from pharmacrm.servicedesk import calendars, workcalendar
from pharmacrm.servicedesk.models import BusinessCalendar

MAX_RANGE_DAYS = 366


def parse_dates(values: list[str]) -> list[dt.date]:
    days: list[dt.date] = []
    for value in values:
        first, _sep, last = value.partition("..")
        try:
            start = dt.date.fromisoformat(first.strip())
            end = dt.date.fromisoformat(last.strip()) if last else start
        except ValueError:
            raise CommandError(_("“%(value)s” is not a date (YYYY-MM-DD) or a range (FROM..TO).") % {"value": value}) from None
        if end < start or (end - start).days >= MAX_RANGE_DAYS:
            raise CommandError(_("“%(value)s” is not a range of at most one year, earliest date first.") % {"value": value})
        days += [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    return days


class Command(BaseCommand):
    help = "Show, check and change the holidays and swapped working days of a business calendar."

    def add_arguments(self, parser):
        calendar_help = "The calendar's code (default: business)."
        parser.add_argument("--calendar", default="business", help=calendar_help)
        # also after the action (`holidays list --calendar always`), as an operator naturally types it
        shared = argparse.ArgumentParser(add_help=False)
        shared.add_argument("--calendar", default=argparse.SUPPRESS, help=calendar_help)
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser(
            "check", parents=[shared], help="Years (this one, and next from November on) without holiday data."
        )
        listing = sub.add_parser("list", parents=[shared], help="A year's days off and swapped working days.")
        listing.add_argument("--year", type=int, default=None)
        setter = sub.add_parser("set", parents=[shared], help="Make dates days off (--off) or working days (--on).")
        setter.add_argument("dates", nargs="+")
        kind = setter.add_mutually_exclusive_group(required=True)
        kind.add_argument("--off", dest="working", action="store_false")
        kind.add_argument("--on", dest="working", action="store_true")
        setter.add_argument("--note", default="")
        unset = sub.add_parser("unset", parents=[shared], help="Remove overrides: the official schedule or weekly pattern applies.")
        unset.add_argument("dates", nargs="+")

    def handle(self, *args, action, calendar, **options):
        cal = BusinessCalendar.objects.filter(code=calendar).first()
        if cal is None:
            raise CommandError(_("There is no calendar with the code %(code)s.") % {"code": calendar})
        getattr(self, f"do_{action}")(cal, **options)

    def do_check(self, cal, **options):
        gaps = [g for g in calendars.coverage_gaps() if g.calendar.pk == cal.pk]
        for gap in gaps:
            self.stdout.write(
                _("%(calendar)s: no holiday data for %(year)s — enter it with `pharmacrm holidays set`.")
                % {"calendar": cal.name, "year": gap.year}
            )
        if gaps:
            raise SystemExit(1)
        self.stdout.write(_("%(calendar)s: holiday data is complete.") % {"calendar": cal.name})

    def do_list(self, cal, year=None, **options):
        year = year or timezone.localdate().year
        engine = calendars.engine(cal)
        if not engine.covers(year):
            self.stdout.write(
                _("No State Council schedule for %(year)s yet: the weekly pattern applies, less the days off the law "
                  "fixes (listed below).") % {"year": year}
            )  # fmt: skip
        statutory = workcalendar.statutory_days(year, translation.get_language() or "en") if engine.official_holidays else {}
        notes = {**statutory, **dict(cal.overrides.filter(date__year=year).values_list("date", "note"))}
        day = dt.date(year, 1, 1)
        while day.year == year:
            working, usual = engine.is_working_day(day), day.weekday() in engine.workdays
            if working != usual or day in notes:
                label = _("working day") if working else _("day off")
                self.stdout.write(f"{day.isoformat()}  {label}  {notes.get(day, '')}".rstrip())
            day += dt.timedelta(days=1)

    def do_set(self, cal, dates, working, note="", **options):
        actor = cli_actor()
        days = sorted(set(parse_dates(dates)))
        # one change, as the year page makes it: one version, one audit entry naming every date, one recount of the
        # open tickets' deadlines — and nothing written when it fails (a date at a time, the Spring Festival week
        # was seven audit entries and seven recounts of every open ticket, and a failure left it half entered)
        calendars.set_overrides(None, cal, days, working, note, system_actor=actor)
        self.stdout.write(_("%(count)d dates set.") % {"count": len(days)})

    def do_unset(self, cal, dates, **options):
        actor = cli_actor()
        removed = calendars.remove_overrides(None, cal, parse_dates(dates), system_actor=actor)  # one change, as `set`
        self.stdout.write(_("%(count)d overrides removed.") % {"count": removed})
