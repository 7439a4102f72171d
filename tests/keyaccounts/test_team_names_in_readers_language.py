"""A key account's service team is named in the product's language (重点客户服务组·协和医院), with what it was named
from, and reads in the reader's language on the pages (`Team.shown_name`); a team renamed since reads as typed. Teams
named before are recognised by the migration (keyaccounts 0022)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse
from django.utils import translation

from pharmacrm.core.models import Team
from pharmacrm.keyaccounts import services

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
migration = importlib.import_module("pharmacrm.keyaccounts.migrations.0022_generated_team_names")


def test_a_service_team_reads_in_the_readers_language(listed, xiehe, client_for):
    account = listed(xiehe)
    team = account.team
    customer = xiehe.short_name or xiehe.name
    assert team.name == f"重点客户服务组·{customer}"  # stored as before: unique, matched by the customer import
    with translation.override("en"):
        assert str(team) == f"Key-account service team · {customer}"
    with translation.override("zh-hans"):
        assert str(team) == team.name
    page = client_for("manager").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert f"Key-account service team · {customer}" in page.content.decode()


def test_a_renamed_team_reads_as_typed(listed, xiehe):
    team = listed(xiehe).team
    Team.objects.filter(pk=team.pk).update(name="协和专属服务组")
    team.refresh_from_db()
    with translation.override("en"):
        assert str(team) == "协和专属服务组"


def test_a_team_named_with_the_files_number_keeps_it(xiehe, db):
    for customer in {xiehe.short_name or xiehe.name, xiehe.name}:  # the names are taken
        Team.objects.create(name=f"重点客户服务组·{customer}")
    team = services.service_team(xiehe, "KA-2026-0007")
    assert team.name.endswith("·KA-2026-0007")
    with translation.override("en"):
        assert str(team) == f"Key-account service team · {xiehe.short_name or xiehe.name} · KA-2026-0007"


def test_the_migration_recognises_the_teams_named_before(listed, xiehe):
    team = listed(xiehe).team
    other = Team.objects.create(name="重点客户服务组·华东")  # no key account's team: left alone
    Team.objects.filter(pk=team.pk).update(name=f"{team.name}·20261205155641", generated="", generated_params={})

    migration.fill_generated(apps, SimpleNamespace(connection=connection))

    team.refresh_from_db()
    other.refresh_from_db()
    customer = xiehe.short_name or xiehe.name
    assert (team.generated, team.generated_params) == ("key_account", {"customer": customer, "suffix": "20261205155641"})
    assert other.generated == ""
    with translation.override("en"):
        assert str(team) == f"Key-account service team · {customer} · 20261205155641"
