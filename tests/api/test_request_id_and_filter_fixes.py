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
