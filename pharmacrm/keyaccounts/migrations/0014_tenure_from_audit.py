"""Team tenures of members removed before tenures were kept (0011 started them for the members serving then
only): rebuilt from the audit trail, where every addition to and removal from a team is recorded on the key
account ({"team": [None, {"user", "role"}]} and {"team": [{"user", "role"}, None]}). Without them, a member
who had left before 0011 had no scorecard for the quarters they served. And a de-listed account's tenures end
on its de-listing day (0011 left those of a team de-listed before it open, so the account stayed on its team's
cards of later periods)."""

import datetime as dt
import zoneinfo

from django.conf import settings
from django.db import migrations
from django.db.models import Q


def _day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()


def from_audit(apps, schema_editor):
    AuditEntry = apps.get_model("core", "AuditEntry")
    KeyAccount = apps.get_model("keyaccounts", "KeyAccount")
    TeamTenure = apps.get_model("keyaccounts", "TeamTenure")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    accounts = {a.pk: a for a in KeyAccount.objects.all()}
    users = set(User.objects.values_list("pk", flat=True))
    started: dict[tuple, dt.date] = {}
    spans = []
    entries = AuditEntry.objects.filter(object_type="keyaccounts.keyaccount").order_by("seq")
    for entry in entries.only("object_id", "at", "changes").iterator(chunk_size=2000):
        team = (entry.changes or {}).get("team") if isinstance(entry.changes, dict) else None
        if not isinstance(team, list) or len(team) != 2:
            continue
        try:
            account_id = int(entry.object_id)
        except (TypeError, ValueError):
            continue
        before, after = team
        if before is None and isinstance(after, dict):
            started[(account_id, after.get("user"), after.get("role"))] = _day(entry.at)
        elif after is None and isinstance(before, dict):
            key = (account_id, before.get("user"), before.get("role"))
            account = accounts.get(account_id)
            listed = _day(account.listed_at) if account is not None and account.listed_at else _day(entry.at)
            spans.append((key, started.pop(key, listed), _day(entry.at)))
    for (account_id, user_id, role), start, end in spans:
        if account_id not in accounts or user_id not in users or not role:
            continue
        overlapping = TeamTenure.objects.filter(account_id=account_id, user_id=user_id, role=role, start__lte=end).filter(
            Q(end__isnull=True) | Q(end__gte=start)
        )
        if not overlapping.exists():
            TeamTenure.objects.create(account_id=account_id, user_id=user_id, role=role, start=min(start, end), end=end)
    for account in KeyAccount.objects.filter(status="delisted", delisted_at__isnull=False):
        TeamTenure.objects.filter(account=account, end__isnull=True).update(end=_day(account.delisted_at))


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0011_user_session_salt"),
        ("keyaccounts", "0013_trialoffer_version"),
    ]

    operations = [migrations.RunPython(from_audit, migrations.RunPython.noop)]
