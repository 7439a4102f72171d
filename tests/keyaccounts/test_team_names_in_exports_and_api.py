"""A key account's service team reads in the reader's language beyond the pages: the API's `team_label` (beside
`team_name`, kept as stored), the customer export (which the import reads back), the sales pipeline export, the
targets API, the training export and the service performance export's filter line."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from pharmacrm.core.models import Team
from pharmacrm.customers import importer
from pharmacrm.sales.models import Opportunity, SalesTarget
from tests.api.conftest import api_for  # noqa: F401  (token clients per role)

pytestmark = pytest.mark.django_db

SHOWN = "Key-account service team · 协和医院"


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def team(xiehe):
    team = Team.objects.create(name="重点客户服务组·协和医院", generated="key_account",
                               generated_params={"customer": "协和医院"})  # fmt: skip
    xiehe.team = team
    xiehe.save(update_fields=["team"])
    return team


def cells(body: bytes) -> list:
    return [c.value for sheet in load_workbook(io.BytesIO(body)).worksheets for row in sheet.iter_rows() for c in row]


def test_the_customer_api_gives_the_team_in_the_readers_language_beside_its_stored_name(team, xiehe, api_for):  # noqa: F811
    body = api_for("manager", lang="en").get(f"/api/v1/institutions/{xiehe.pk}/").json()
    assert (body["team_name"], body["team_label"]) == ("重点客户服务组·协和医院", SHOWN)
    body = api_for("manager", lang="zh-hans").get(f"/api/v1/institutions/{xiehe.pk}/").json()
    assert body["team_label"] == "重点客户服务组·协和医院"
    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)
    assert "team_label" in spec["components"]["schemas"]["Institution"]["properties"]
    assert "team_label" in spec["components"]["schemas"]["SalesTarget"]["properties"]


def test_the_customer_export_names_the_team_in_the_readers_language_and_imports_again(
    team, users, client_for, tmp_path
):
    client = client_for("kam")
    response = client.get(reverse("customers:export", args=["institutions", "csv"]), HTTP_ACCEPT_LANGUAGE="en")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    column = rows[0].index("Team")  # headed in the reader's language too (所属团队 on a Chinese page)
    assert SHOWN in [r[column] for r in rows[1:]]
    response = client.get(reverse("customers:export", args=["institutions", "xlsx"]), HTTP_ACCEPT_LANGUAGE="en")
    path = tmp_path / "institutions.xlsx"
    path.write_bytes(b"".join(response.streaming_content))
    assert SHOWN in cells(path.read_bytes())
    job = importer.import_file(path, "institutions", users["kam"])  # the English name finds the team
    assert (job.created_count, job.updated_count, job.error_count) == (0, 0, 0), job.errors


def test_the_pipeline_export_names_the_team_in_the_readers_language(team, xiehe, users, client_for):
    Opportunity.objects.create(institution=xiehe, title="心内科集采", amount_fen=1_000_000,
                               close_date=dt.date(2027, 1, 31), owner=users["rep"], team=team)  # fmt: skip
    response = client_for("manager").get("/sales/pipeline/export.xlsx", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert SHOWN in cells(response.content)


def test_the_targets_api_names_the_team_in_the_readers_language(team, api_for):  # noqa: F811
    SalesTarget.objects.create(year=2026, kind="month", number=11, team=team, amount_fen=5_000_000)
    client = api_for("manager", lang="en")
    body = client.get("/api/v1/sales/targets/").json()
    row = next(r for r in body.get("results", body) if r["team"] == team.pk)
    assert (row["team_name"], row["team_label"]) == ("重点客户服务组·协和医院", SHOWN)
    body = client.get("/api/v1/sales/attainment/?period=2026-11").json()
    assert SHOWN in [r["name"] for r in body["teams"]]


def test_the_training_export_names_the_team_in_the_readers_language(team, client_for):
    response = client_for("manager").get(f"/training/results/export.xlsx?team={team.pk}", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert SHOWN in cells(response.content)


def test_the_performance_export_names_the_team_filter_in_the_readers_language(team, client_for):
    response = client_for("manager").get(reverse("servicedesk:performance-export"),
                                         {"period": "2026-11", "team": team.pk}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert response.status_code == 200
    assert any(SHOWN in str(c) for c in cells(response.content) if c)


def test_the_targets_grid_names_the_team_in_the_readers_language_and_imports_again(team, client_for):
    from django.core.files.uploadedfile import SimpleUploadedFile

    SalesTarget.objects.create(year=2026, kind="month", number=1, team=team, amount_fen=5_000_000)
    client = client_for("manager")
    export = client.get("/sales/targets/grid/export.xlsx?year=2026", HTTP_ACCEPT_LANGUAGE="en")
    assert SHOWN in cells(export.content)
    SalesTarget.objects.filter(team=team).update(amount_fen=1)  # the file sets it back
    again = SimpleUploadedFile("again.xlsx", export.content)
    response = client.post("/sales/targets/grid/import/", {"year": "2026", "file": again}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302, response.content.decode()[:3000]
    assert SalesTarget.objects.get(team=team, year=2026, number=1).amount_fen == 5_000_000
