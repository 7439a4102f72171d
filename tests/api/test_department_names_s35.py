"""A department is named with its hospital wherever an API names a customer (many hospitals have a 心内科): the
interactions API's `institution_name` and the improvement actions' `customer_name` gave "心内科" alone, as the
order-line, evaluation and incentive APIs did before."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pharmacrm.customers.models import Institution
from pharmacrm.engagement import services as engagement
from pharmacrm.servicedesk import revisit


def _cardiology(xiehe) -> Institution:
    return Institution.objects.get(parent=xiehe, name="心内科")


def test_the_interactions_api_names_a_department_with_its_hospital(api_for, users, xiehe):
    cardiology = _cardiology(xiehe)
    for n, place in enumerate((cardiology, xiehe, cardiology)):
        engagement.record_interaction(users["kam"], {
            "institution": place, "channel": "wechat", "subject": f"微信咨询 {n}", "received_at": timezone.now(),
        })  # fmt: skip
    client = api_for("manager")
    with CaptureQueriesContext(connection) as listed:
        rows = client.get("/api/v1/interactions/").json()["results"]
    assert sorted(r["institution_name"] for r in rows) == ["北京协和医院", "北京协和医院 › 心内科", "北京协和医院 › 心内科"]
    one = client.get(f"/api/v1/interactions/{rows[0]['id']}/").json()
    assert one["institution_name"] == rows[0]["institution_name"]
    # the hospital comes in the same query as its department: no query per row
    assert not [q for q in listed.captured_queries if '"customers_institution"."id" = ' in q["sql"]]


def test_the_improvement_actions_api_names_a_department_with_its_hospital(api_for, users, xiehe):
    cardiology = _cardiology(xiehe)
    due = timezone.localdate() + dt.timedelta(days=7)
    revisit.create_action(users["manager"], {
        "title": "回访心内科", "owner": users["agent"], "due_date": due, "institution": cardiology,
    })  # fmt: skip
    revisit.create_action(users["manager"], {
        "title": "回访医院", "owner": users["agent"], "due_date": due, "institution": xiehe,
    })  # fmt: skip
    rows = api_for("manager").get("/api/v1/improvement-actions/").json()["results"]
    assert {r["title"]: r["customer_name"] for r in rows} == {
        "回访心内科": "北京协和医院 › 心内科", "回访医院": "北京协和医院",
    }


def test_the_schema_says_what_the_names_are(api_for):
    schema = api_for("admin").get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]
    for component, field in (("Interaction", "institution_name"), ("ImprovementAction", "customer_name")):
        assert "北京协和医院 › 心内科" in schema[component]["properties"][field]["description"], component
