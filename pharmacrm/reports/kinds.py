"""The reports a user may have mailed, each with who may see it and how its workbook is made — the page's own export
(the same function), counted as the user would see it on the page at the moment it is sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from pharmacrm.core import access, personal
from pharmacrm.core.roles import Cap
from pharmacrm.servicedesk.performance import Period

from .models import Report


@dataclass(frozen=True)
class Kind:
    report: str
    may: Callable  # may(user) -> bool
    build: Callable  # build(user, period, team) -> bytes; PermissionDenied when the user may no longer see it
    filename: Callable  # filename() -> the export's name in the reader's language ("服务绩效")
    page: str  # the page's url name
    by_team: bool = False  # a subscription may be for one team's figures
    # counted as of the day it is made, whatever the period: a report that cannot be counted as of a past day (the
    # key-account progress report lists the accounts and their plans as they stand) is mailed as of that day, and
    # says so, never under the title of the period before
    snapshot: bool = False

    def teams(self, user):
        """The teams the user may choose for this report (none for a report without teams)."""
        from pharmacrm.core.models import Team
        from pharmacrm.servicedesk import complaints, performance

        if not self.by_team:
            return Team.objects.none()
        module = performance if self.report == Report.SERVICE_PERFORMANCE else complaints
        try:
            return performance.teams_for(user, module.scope_for(user))
        except PermissionDenied:
            return Team.objects.none()


def _performance_may(user) -> bool:
    from pharmacrm.servicedesk import performance

    return performance.may_see(user)


def _performance(user, period: Period, team) -> bytes:
    from pharmacrm.servicedesk import performance, performance_export

    return performance_export.xlsx(performance.report(user, performance.Query(period=period, team=team), trend=False))


def _complaints_may(user) -> bool:
    from pharmacrm.servicedesk import complaints

    return complaints.may_see(user)


def _complaints(user, period: Period, team) -> bytes:
    from pharmacrm.servicedesk import complaints, complaints_export
    from pharmacrm.servicedesk.views_complaints import headline, matrix

    rep = complaints.report(user, complaints.Query(period=period, team=team))
    return complaints_export.xlsx(rep, headline(rep), matrix(rep))


def _attainment_may(user) -> bool:
    from pharmacrm.sales import targets

    return targets.may_see(user)


def _attainment(user, period: Period, team) -> bytes:
    from pharmacrm.sales import targets
    from pharmacrm.sales.views_targets import attainment_xlsx

    return attainment_xlsx(targets.report(user, period))


def _keyaccounts_may(user) -> bool:
    return access.can(user, Cap.VIEW_KEY_ACCOUNTS)


def _keyaccounts(user, period: Period, team) -> bytes:
    from pharmacrm.keyaccounts import report, services
    from pharmacrm.keyaccounts.choices import AccountStatus

    access.require(user, Cap.VIEW_KEY_ACCOUNTS)
    accounts = services.accounts_for(user).filter(status=AccountStatus.ACTIVE)
    rows = report.rows(accounts.select_related("institution").order_by("number"), personal.masks_free_text(user))
    return report.xlsx(rows)


KINDS: dict[str, Kind] = {
    Report.SERVICE_PERFORMANCE: Kind(Report.SERVICE_PERFORMANCE, _performance_may, _performance,
                                     lambda: _("Service performance"), "servicedesk:performance", by_team=True),
    Report.COMPLAINT_ANALYSIS: Kind(Report.COMPLAINT_ANALYSIS, _complaints_may, _complaints,
                                    lambda: _("Complaint analysis"), "servicedesk:complaints", by_team=True),
    Report.SALES_ATTAINMENT: Kind(Report.SALES_ATTAINMENT, _attainment_may, _attainment,
                                  lambda: _("Sales attainment"), "sales:targets"),
    Report.KEYACCOUNT_PROGRESS: Kind(Report.KEYACCOUNT_PROGRESS, _keyaccounts_may, _keyaccounts,
                                     lambda: _("Key-account progress report"), "keyaccounts:home", snapshot=True),
}  # fmt: skip


def offered(user) -> list[Kind]:
    """The reports this user may have mailed, in the order of the list."""
    return [k for k in KINDS.values() if k.may(user)]
