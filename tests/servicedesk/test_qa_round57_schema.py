"""Session 57 (API QA): what the quality reviews and a survey campaign's results answer matches the OpenAPI schema.
A review not appealed has `appeal_status` "" and an answer whose score led to nothing has `outcome` "": the schema
listed neither empty value, so a client generated from it failed to read the lists."""

# ruff: noqa: F811 — the fixtures imported from test_performance.py and test_survey_campaigns.py are parameters here
from __future__ import annotations

import jsonschema
import pytest

from pharmacrm.servicedesk import campaigns, quality
from pharmacrm.servicedesk.models import CampaignTarget
from tests.servicedesk.test_performance import api_client, desk, november  # noqa: F401 — fixtures
from tests.servicedesk.test_survey_campaigns import clinic, new_campaign, world  # noqa: F401 — fixtures

pytestmark = pytest.mark.django_db


def _openapi_to_json_schema(node):
    """OpenAPI 3.0's `nullable` as JSON Schema's null type."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _openapi_to_json_schema(v) for k, v in node.items()}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    return node


def assert_matches_schema(client, path: str, template: str, body) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answer = schema["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    document = _openapi_to_json_schema({**answer, "components": schema["components"]})
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft202012Validator(document).iter_errors(body)]  # fmt: skip
    assert not errors, f"{path}: " + "\n".join(errors[:5])


def test_a_review_not_appealed_reads_as_the_schema_says(users, desk, november, client):
    review = quality.review(users["expert"], november["T1"], {"accurate": True, "compliant": True, "complete": True,
                                                              "courteous": True, "comment": ""})  # fmt: skip
    api = api_client(users["manager"])

    listed = api.get("/api/v1/service/quality-reviews/")
    one = api.get(f"/api/v1/service/quality-reviews/{review.pk}/")

    assert listed.status_code == one.status_code == 200
    assert one.json()["appeal_status"] == ""
    assert_matches_schema(client, "list", "/api/v1/service/quality-reviews/", listed.json())
    assert_matches_schema(client, "one", "/api/v1/service/quality-reviews/{id}/", one.json())


def test_a_campaigns_results_with_a_good_answer_read_as_the_schema_says(users, world, client):
    clinic(users["admin"], "东城诊所", person="赵一")  # no e-mail: called
    campaign = new_campaign(users, province="110000")
    campaigns.start(users["manager"], campaign)
    target = CampaignTarget.objects.get(campaign=campaign, institution__name="东城诊所")
    campaigns.record_phone(users["agent"], target, 5, "", 10)  # a good score: no outcome

    response = api_client(users["manager"]).get(f"/api/v1/survey-campaigns/{campaign.pk}/results/")

    assert response.status_code == 200, response.content
    assert [a["outcome"] for a in response.json()["answers"]] == [""]
    assert_matches_schema(client, "results", "/api/v1/survey-campaigns/{id}/results/", response.json())
