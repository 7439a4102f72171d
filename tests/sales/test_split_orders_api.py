"""The split orders API (/api/v1/sales/split-orders/): the page's list, read-only, for those who see purchases, and
`POST …/repair/` for those who import orders, through the page's and the command's repair."""

from __future__ import annotations

import datetime as dt

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.sales.models import OrderLine

from .conftest import line
from .test_split_orders_page import REPAIRERS, ROLES, VIEWERS

LIST = "/api/v1/sales/split-orders/"
REPAIR = "/api/v1/sales/split-orders/repair/"


@pytest.mark.parametrize("role", ROLES)
def test_the_list_is_for_those_who_see_purchases_and_the_repair_for_those_who_import(api_for, planted, role):
    response = api_for(role).get(LIST)

    assert response.status_code == (200 if role in VIEWERS else 403)
    if role in VIEWERS:
        numbers = [o["order_number"] for o in response.json()["results"]]
        assert numbers == (["SO-3", "SO-5"] if role == "rep" else ["SO-1", "SO-3", "SO-5"])
    repair = api_for(role).post(REPAIR, {"order_number": "SO-5"}, format="json")
    assert repair.status_code == (200 if role in REPAIRERS else 403)
    assert OrderLine.objects.filter(order_number="SO-5").values("institution_id").distinct().count() == (
        1 if role in REPAIRERS else 2)  # fmt: skip


def test_each_order_carries_its_parts_and_what_the_repair_keeps(api_for, planted):
    xiehe, huashan, _dongcheng = planted

    data = api_for("auditor").get(LIST, {"order_number": "so-1"}).json()

    (order,) = data["results"]
    assert data["count"] == 1 and order["order_number"] == "SO-1"
    assert order["customers"] == [
        {"customer": huashan.pk, "customer_name": huashan.name, "code": huashan.credit_code,
         "order_dates": ["2026-03-05"], "lines": [3], "amount": "100.00",
         "last_imported": order["customers"][0]["last_imported"], "kept": True},
        {"customer": xiehe.pk, "customer_name": xiehe.name, "code": xiehe.credit_code, "order_dates": ["2026-03-05"],
         "lines": [1, 2], "amount": "250.00", "last_imported": order["customers"][1]["last_imported"], "kept": False},
    ]  # fmt: skip
    assert order["order_dates"] == [] and order["kept_customer"] == huashan.pk
    assert order["kept_order_date"] == "2026-03-05" and order["latest_line"] == 3
    dated = api_for("auditor").get(LIST, {"order_number": "SO-3"}).json()["results"][0]
    assert [(d["order_date"], d["lines"], d["amount"], d["kept"], d["customers"]) for d in dated["order_dates"]] == [
        ("2026-04-01", [3], "100.00", True, [xiehe.pk]), ("2026-03-31", [1, 2], "250.00", False, [xiehe.pk])]  # fmt: skip
    assert dated["customers"] == [] and dated["kept_customer"] == xiehe.pk


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"customer": "{huashan}"}, ["SO-1"]),
        ({"date_from": "2026/04/01"}, ["SO-3", "SO-5"]),
        ({"date_to": "2026年3月31日"}, ["SO-1", "SO-3"]),
    ],
)
def test_the_list_filters(api_for, planted, params, expected):
    _xiehe, huashan, _dongcheng = planted
    params = {k: v.format(huashan=huashan.pk) for k, v in params.items()}

    data = api_for("manager").get(LIST, params).json()

    assert [o["order_number"] for o in data["results"]] == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [({"customer": "abc"}, "customer"), ({"date_from": "31.03.2026"}, "date_from"),
     ({"date_from": "2026-04-02", "date_to": "2026-04-01"}, "date_to"), ({"page_size": "0"}, "page_size")],
)  # fmt: skip
def test_a_wrong_filter_is_refused_by_name(api_for, planted, params, field):
    response = api_for("manager").get(LIST, params)

    assert response.status_code == 400 and field in response.json()


def test_the_list_pages(api_for, planted):
    first = api_for("admin").get(LIST, {"page_size": 2}).json()

    assert first["count"] == 3 and [o["order_number"] for o in first["results"]] == ["SO-1", "SO-3"]
    second = api_for("admin").get(first["next"]).json()
    assert [o["order_number"] for o in second["results"]] == ["SO-5"]


def test_a_repair_keeps_the_part_chosen_and_a_second_one_changes_nothing(api_for, planted, users):
    xiehe, huashan, _dongcheng = planted
    admin = api_for("admin")

    first = admin.post(REPAIR, {"order_number": "SO-1", "customer": xiehe.pk}, format="json")
    second = admin.post(REPAIR, {"order_number": "SO-1", "customer": huashan.pk}, format="json")

    assert first.status_code == 200 and first.json() == {
        "order_number": "SO-1", "customer": xiehe.pk, "order_date": "2026-03-05", "moved": 1, "redated": 0,
        "already_repaired": False, "repaired_by": None, "repaired_at": None,
    }  # fmt: skip
    assert second.status_code == 200
    answer = second.json()
    assert answer["already_repaired"] is True and (answer["moved"], answer["customer"]) == (0, xiehe.pk)
    assert answer["repaired_by"] == str(users["admin"]) and answer["repaired_at"]
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {xiehe.pk}
    (entry,) = AuditEntry.objects.filter(object_type="sales.orderline", action="update")
    assert entry.object_repr == "SO-1/3" and entry.extra["source"] == "api" and entry.extra["reason"] == "split order"


def test_a_date_chosen_and_a_part_the_order_lacks(api_for, planted, dongcheng):
    admin = api_for("admin")

    assert admin.post(REPAIR, {"order_number": "SO-2"}, format="json").status_code == 404  # never split
    assert admin.post(REPAIR, {"order_number": "SO-404"}, format="json").status_code == 404
    lacking = admin.post(REPAIR, {"order_number": "SO-5", "order_date": "2026-05-11"}, format="json")
    assert lacking.status_code == 400
    assert lacking.json() == {"order_date": ["2026-05-11 is not one of the order dates of order SO-5."]}
    lacking = admin.post(REPAIR, {"order_number": "SO-1", "customer": dongcheng.pk}, format="json")
    assert lacking.json() == {"customer": [f"{dongcheng.name} is not one of the customers of order SO-1."]}
    done = admin.post(REPAIR, {"order_number": "SO-3", "order_date": "2026/03/31"}, format="json").json()
    assert (done["order_date"], done["redated"]) == ("2026-03-31", 1)
    assert set(OrderLine.objects.filter(order_number="SO-3").values_list("order_date", flat=True)) == {dt.date(2026, 3, 31)}


def test_the_order_import_answers_the_split_orders_it_names(api_for, planted, xiehe):
    body = {"lines": [line("SO-1", 2, "2026-03-05", xiehe, "P2", 3, "50"), line("SO-3", 1, "2026-03-31", xiehe, "P1", 2, "100"),
                      line("SO-8", 1, "2026-06-01", xiehe, "P1", 1, "10")]}  # fmt: skip

    data = api_for("admin").post("/api/v1/sales/orders/", body, format="json").json()

    assert data["rejected"] == 0 and data["split_orders"] == 2 and data["split_order_numbers"] == ["SO-1", "SO-3"]
    assert any("2 orders named in this file are split" in m for m in data["messages"])
    job = api_for("admin").get(f"/api/v1/imports/{data['job']}/").json()
    assert any("2 orders named in this file are split" in n for n in job["notes"])
