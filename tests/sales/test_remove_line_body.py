"""POST /api/v1/order-lines/{id}/remove/ with a body a buggy client sends: refused by field, the line kept."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.sales.models import OrderLine

from .conftest import line

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("[]", {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        ('"ERP 已删除"', {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}),
        ("null", {"non_field_errors": ["The request body is empty: send the fields as a JSON object."]}),
        ('{"reason": null}', {"reason": ["This field may not be null."]}),
        ('{"reason": ["ERP", "已删除"]}', {"reason": ["Not a valid string."]}),
        ('{"reason": {"text": "ERP 已删除"}}', {"reason": ["Not a valid string."]}),
    ],
)
def test_a_body_that_is_not_an_object_with_a_text_reason_is_refused(run_import, xiehe, api_for, body, answer):
    """A list or a string as the body answered 500; `{"reason": null}` removed the line with the reason "None",
    a list with the reason "['ERP', '已删除']"."""
    day = timezone.localdate() - dt.timedelta(days=20)
    run_import([line("SO-B1", 1, day, xiehe, "P1", 10, "100")])
    pk = OrderLine.objects.get(order_number="SO-B1").pk

    response = api_for("manager").post(f"/api/v1/order-lines/{pk}/remove/", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json() == answer
    assert OrderLine.objects.filter(pk=pk).exists()
    assert not AuditEntry.objects.filter(object_type="sales.orderline", action=AuditEntry.Action.DELETE).exists()
