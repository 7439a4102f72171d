"""Sixteenth session: a customer merge carries the duplicate's key opinion leaders and marketing's assessment
to the survivor (they stayed on the inactive duplicate, so the survivor's market influence scored as if
marketing had never entered them)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.keyaccounts import influence
from pharmacrm.keyaccounts.models import MarketInfluence


def _copy(admin, of, name):
    return customers.create_institution(admin, {"name": name, "kind": "hospital", "grade": "3A", "region": of.region})


def test_the_survivor_without_influence_takes_the_duplicates(admin_user, xiehe):
    duplicate = _copy(admin_user, xiehe, "北京协和医院东院")
    influence.save_influence(admin_user, duplicate, {"kol_names": "张三、李四", "assessment": "80", "notes": "院长在指南委员会"})
    customers.merge(admin_user, xiehe, duplicate)
    mine = MarketInfluence.objects.get(institution=xiehe)
    assert (mine.kol_count, mine.kol_names, mine.assessment, mine.notes) == (2, "张三、李四", 80, "院长在指南委员会")
    entry = AuditEntry.objects.filter(object_type="keyaccounts.marketinfluence", action=AuditEntry.Action.CREATE).order_by("seq").last()
    assert entry.extra["merged"] == duplicate.pk and entry.actor_id == admin_user.pk
    # the duplicate keeps its record as it was (history)
    assert MarketInfluence.objects.get(institution=duplicate).kol_names == "张三、李四"


def test_both_records_combine_names_keep_the_survivors_assessment(admin_user, xiehe):
    duplicate = _copy(admin_user, xiehe, "北京协和医院西院")
    influence.save_influence(admin_user, xiehe, {"kol_names": "张三, 王五", "kol_count": "3", "assessment": "60"})
    influence.save_influence(admin_user, duplicate, {"kol_names": "张三、李四", "assessment": "90", "notes": "外科强"})
    customers.merge(admin_user, xiehe, duplicate)
    mine = MarketInfluence.objects.get(institution=xiehe)
    assert mine.kol_names == "张三、王五、李四"
    assert mine.kol_count == 3 and mine.assessment == 60 and mine.notes == "外科强"
    assert mine.version == 2
    entry = AuditEntry.objects.filter(object_type="keyaccounts.marketinfluence", action=AuditEntry.Action.UPDATE).order_by("seq").last()
    assert set(entry.changes) == {"kol_names", "notes"}


# --- the key-account review round ---------------------------------------------------------------------

from pharmacrm.keyaccounts import services  # noqa: E402

from .programme_fixtures import *  # noqa: E402, F403


def test_an_open_ended_plan_validity_is_refused_with_what_to_do(users, xiehe, staffed):
    """ERP habit: "valid to 9999-12-31" for no end. The form took it, and after the agreement the account page
    answered 500 for everyone (a date past 9999 in the agreement term)."""
    account = staffed(xiehe)
    today = timezone.localdate()
    with pytest.raises(ValidationError) as refused:
        services.start_plan(users["kam"], account, goals="长期合作", valid_from=today, valid_to=dt.date(9999, 12, 31))
    assert "valid_to" in refused.value.message_dict
    services.start_plan(users["kam"], account, goals="长期合作", valid_from=today)  # no end: leave it empty


def test_evaluate_refuses_a_date_in_the_future(db):
    from django.core.management import CommandError, call_command

    from pharmacrm.keyaccounts.models import EvaluationRun

    with pytest.raises(CommandError):
        call_command("evaluate", "--as-of", "2099-01-01")  # a typo for 2026: a period decades ahead
    assert not EvaluationRun.objects.filter(period="2099H1").exists()
