"""Sixteenth session: the order API counts lines from 1 in every error, its own checks included."""

from __future__ import annotations

from tests.sales.test_api import api_line


def test_a_line_refused_by_the_request_check_is_named_by_its_position_from_1(api_for, xiehe):
    good = api_line("API-P1", 1, xiehe)
    bad = {**api_line("API-P1", 2, xiehe), "batch_number": {"not": "text"}}
    response = api_for("admin").post("/api/v1/sales/orders/", {"lines": [good, good, bad]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert list(body["lines"]) == ["3"] and "batch_number" in body["lines"]["3"]
