"""A team's service goal on the audit page reads in the reader's language, whoever set it: its entries keep the
goal's codes (the team's id, the indicator) and its recorded name as stored, not the words of the actor's language —
a key account's service team set by an English-speaking manager read "Key-account service team · 协和医院" to every
Chinese auditor. Entries written before keep their recorded name; the chain still verifies."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.templatetags.crm import audit_detail
from pharmacrm.servicedesk import goals

pytestmark = pytest.mark.django_db

URL = "/accounts/audit/"
STORED = "重点客户服务组·协和医院"
ENGLISH = "Key-account service team · 协和医院"


@pytest.fixture
def team():
    return Team.objects.create(name=STORED, generated="key_account", generated_params={"customer": "协和医院"})


def text(client, language: str) -> str:
    response = client.get(URL, {"object_type": "servicedesk.servicegoal"}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_teams_goal_set_in_english_reads_in_each_readers_language(users, team, client_for):
    with translation.override("en"):  # the manager works in English
        goals.save(users["manager"], {"resolution_rate": "80"}, team=team)
        goals.save(users["manager"], {"resolution_rate": "85"}, team=team, loaded={"resolution_rate": "80"})
        goals.save(users["manager"], {"resolution_rate": ""}, team=team, loaded={"resolution_rate": "85"})
    entries = list(AuditEntry.objects.filter(object_type="servicedesk.servicegoal").order_by("seq"))
    assert [e.action for e in entries] == ["create", "update", "delete"]
    assert all(ENGLISH not in e.object_repr and STORED in e.object_repr for e in entries)  # as stored
    assert [e.extra.get("indicator") for e in entries] == [None, "resolution_rate", "resolution_rate"]
    assert [e.extra.get("team") for e in entries] == [None, team.pk, team.pk]  # the creation: in its changes
    auditor = client_for("auditor")
    chinese = text(auditor, "zh-hans")
    assert f"{STORED} · 解决率" in chinese and ENGLISH not in chinese and "resolution_rate" not in chinese
    english = text(auditor, "en")
    assert f"{ENGLISH} · Resolution rate" in english and "resolution_rate" not in english
    assert audit.verify().ok


def test_the_desks_goal_is_named_by_its_indicator(users, client_for):
    goals.save(users["manager"], {"csat": "4"})
    goals.save(users["manager"], {"csat": "4.5"}, loaded={"csat": "4"})
    english = text(client_for("auditor"), "en")
    assert english.count("CSAT") >= 2 and "csat 4" not in english


def test_an_entry_written_before_keeps_its_recorded_name(users, team, client_for):
    audit.record(AuditEntry.Action.UPDATE, ("servicedesk.servicegoal", "99", f"{ENGLISH} · nps 20"),
                 user=users["manager"], changes={"target": ["10", "20"]}, source="form")  # fmt: skip
    assert f"{ENGLISH} · nps 20" in text(client_for("auditor"), "zh-hans")
    assert audit.verify().ok


def test_a_team_detail_names_the_team_in_the_readers_language(team):
    names = {"core.team": {str(team.pk): ENGLISH}}  # the page's batch of current names, read in English
    assert audit_detail("training.assignment", "team", team.pk, names) == ENGLISH
    assert audit_detail("sales.salestarget", "team", STORED, names) == STORED  # a target's team: its stored name
