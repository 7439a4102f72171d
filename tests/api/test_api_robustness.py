"""What an API fuzz run found: a body nested too deep, a null body, ids in other scripts' digits, and an
export whose mistyped filter exported every customer."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Person

NESTED = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("path", ["/api/v1/auth/token/", "/api/v1/people/", "/api/v1/tickets/"])
def test_json_nested_too_deep_is_a_bad_request_not_a_server_error(api_for, anon, path):
    client = anon if path.endswith("token/") else api_for("kam")
    response = client.post(path, NESTED, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "The request body is not valid JSON."}


def test_a_null_body_is_answered_in_the_callers_language(api_for):
    english = api_for("kam", lang="en").post("/api/v1/people/", "null", content_type="application/json")
    assert english.status_code == 400
    assert english.json() == {"non_field_errors": ["The request body is empty: send the fields as a JSON object."]}
    chinese = api_for("kam", lang="zh-hans").post("/api/v1/people/", "null", content_type="application/json")
    assert "No data provided" not in str(chinese.json()) and "JSON" in str(chinese.json())


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize("script", [FULL_WIDTH, ARABIC_INDIC])
def test_record_ids_are_ascii_digits_only(api_for, xiehe, script):
    client = api_for("kam")
    person = Person.objects.get(name="张伟")
    assert client.get(f"/api/v1/people/{person.pk}/").status_code == 200
    for path in (f"/api/v1/people/{str(person.pk).translate(script)}/",
                 f"/api/v1/institutions/{str(xiehe.pk).translate(script)}/",
                 f"/api/v1/consents/{'1'.translate(script)}/"):  # fmt: skip
        assert client.get(path).status_code == 404, path


def test_an_export_with_a_mistyped_filter_exports_nothing_and_names_the_field(api_for, xiehe):
    client = api_for("kam")
    before = AuditEntry.objects.filter(action="export").count()
    response = client.get("/api/v1/export/people.csv", {"institution": "abc", "tier": "zzz"})
    assert response.status_code == 400
    assert set(response.json()) == {"institution", "tier"}
    assert AuditEntry.objects.filter(action="export").count() == before  # nothing was exported
    good = client.get("/api/v1/export/people.csv", {"institution": xiehe.pk, "tier": "new"})
    assert good.status_code == 200 and "张伟" in b"".join(good.streaming_content).decode("utf-8-sig")


def test_an_impossible_date_is_called_that_not_a_wrong_format(api_for):
    response = api_for("pv").get("/api/v1/safety/reconciliation/", {"since": "2025-02-30"})
    assert response.status_code == 400
    assert response.json() == {"since": ["“2025-02-30” is not a day of the calendar: check the month and the day."]}


def test_the_api_documentation_page_refuses_options_instead_of_failing(anon):
    """OPTIONS on /api/docs/ — a scanner's probe, anybody's, signed in or not — answered 500 (the Swagger page's
    renderer has no template for a description of the view) and logged a traceback each time."""
    response = anon.options("/api/docs/")
    assert response.status_code == 405
    assert anon.get("/api/docs/").status_code == 200
