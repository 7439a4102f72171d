"""The client's X-Request-ID is kept only when it is a safe token; bad filter values on the users API are refused
by name, in the reader's language."""

from __future__ import annotations

import re

import pytest

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry

A = AuditEntry.Action


@pytest.mark.parametrize(
    "given",
    ["abc\n", "abc\r\nX-Injected: 1", "a" * 65, "two words", "注入", "abc;rm", ""],
)
def test_an_unsafe_request_id_is_replaced_by_a_generated_one_in_the_answer_and_the_audit(api_for, users, given):
    """`abc\\n` passed the check ("$" matches before a final newline): the change was saved and audited with the
    newline in its request id, then the answer failed with a server error writing the header. Anything but a safe
    token is now replaced by a generated id, the same in the answer and in the audit trail."""
    analyst = users["analyst"]
    response = api_for("admin").patch(
        f"/api/v1/users/{analyst.pk}/", {"display_name": "分析员", "version": analyst.version}, format="json",
        HTTP_X_REQUEST_ID=given,
    )  # fmt: skip
    assert response.status_code == 200, response.content
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id) and request_id != given
    entry = AuditEntry.objects.get(action=A.UPDATE, object_type="core.user", object_id=str(analyst.pk))
    assert entry.request_id == request_id
    assert audit.verify().ok


@pytest.mark.parametrize("given", ["ops-2026.12.03_0001", "A" * 64])
def test_a_safe_request_id_is_kept_for_correlation(api_for, users, given):
    analyst = users["analyst"]
    response = api_for("admin").patch(
        f"/api/v1/users/{analyst.pk}/", {"display_name": "分析员", "version": analyst.version}, format="json",
        HTTP_X_REQUEST_ID=given,
    )  # fmt: skip
    assert response.status_code == 200 and response["X-Request-ID"] == given
    assert AuditEntry.objects.get(action=A.UPDATE, object_id=str(analyst.pk)).request_id == given
    assert audit.verify().ok


@pytest.mark.parametrize(("lang", "message"), [("en", "Enter true or false."), ("zh-hans", "请输入 true 或 false。")])
def test_a_users_filter_that_is_neither_true_nor_false_is_refused_by_name(api_for, users, lang, message):
    """`?is_active=maybe` was read as "not given" and listed every user, the deactivated among them."""
    response = api_for("admin", lang=lang).get("/api/v1/users/?is_active=maybe")
    assert response.status_code == 400
    assert response.json() == {"is_active": [message]}


def test_the_active_filter_reads_true_and_false_in_their_usual_spellings(api_for, users):
    from pharmacrm.core import services

    services.deactivate_user(users["admin"], users["analyst"])
    api = api_for("admin")
    for value in ("false", "0", "No", " FALSE "):
        body = api.get("/api/v1/users/", {"is_active": value}).json()
        assert [u["username"] for u in body["results"]] == ["analyst"], value
    for value in ("true", "1", "yes"):
        names = [u["username"] for u in api.get("/api/v1/users/", {"is_active": value, "page_size": 200}).json()["results"]]
        assert "analyst" not in names and "agent" in names, value
    assert api.get("/api/v1/users/", {"is_active": ""}).json()["count"] == len(users)


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/users/", "is_active=maybe", "is_active"),
        ("/api/v1/users/", "role=boss", "role"),
        ("/api/v1/users/", "team=abc", "team"),
        ("/api/v1/users/", "team=99999999999999999999", "team"),
        ("/api/v1/audit/", "actor=abc", "actor"),
        ("/api/v1/audit/", "actor=0", "actor"),
        ("/api/v1/audit/", "action=hack", "action"),
        ("/api/v1/audit/", "from=yesterday", "from"),
        ("/api/v1/audit/", "to=2026-02-30", "to"),
    ],
)
def test_every_users_and_audit_filter_refuses_a_bad_value_by_name(api_for, users, path, query, field):
    """The users and audit lists answer a bad filter value the way the other lists do: 400, the parameter named,
    the message in the reader's language (here Simplified Chinese: no ASCII-only English sentence)."""
    response = api_for("admin", lang="zh-hans").get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field]
    assert re.search(r"[\u4e00-\u9fff]", body[field][0]), body


@pytest.mark.parametrize(
    ("query", "lang", "message"),
    [
        ("from=2026-04-01&to=2026-03-01", "en", "The end date is before the start date."),
        ("from=2026-04-01T12:00:00%2B08:00&to=2026-04-01T08:00:00%2B08:00", "zh-hans", "截止日期早于起始日期。"),
    ],
)
def test_an_audit_range_that_ends_before_it_starts_is_refused_as_on_the_audit_page(api_for, users, query, lang, message):
    """An auditor's script with the dates swapped was answered with an empty list, which read as "nothing
    happened then"; the audit page refuses the same range naming the end date."""
    response = api_for("auditor", lang=lang).get(f"/api/v1/audit/?{query}")
    assert response.status_code == 400
    assert response.json() == {"to": [message]}


def test_an_audit_range_of_one_day_and_a_day_after_a_time_are_ranges(api_for, users):
    api = api_for("auditor")
    assert api.get("/api/v1/audit/?from=2026-03-31&to=2026-03-31").status_code == 200
    assert api.get("/api/v1/audit/?from=2026-03-31T10:00:00%2B08:00&to=2026-03-31").status_code == 200
