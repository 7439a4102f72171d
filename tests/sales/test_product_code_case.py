"""Product codes in any letter case: an ERP writing yp1001 means the catalogue's YP1001 — in the ordinary import, the
initial load's columnar lane and the orders API — and no two recorded codes differ only in case."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import translation

from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import columnar
from pharmacrm.sales.models import OrderLine, ProductCode
from pharmacrm.servicedesk.models import Product

from .conftest import line, today_minus, write_csv


@pytest.fixture
def catalogue(db):
    """YP1001 in the catalogue (linked to its product, as an earlier import with the 批准文号 column leaves it)."""
    product = Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871")
    return ProductCode.objects.create(code="YP1001", name="安心宁 5mg", product=product)


def _codes() -> list[tuple[str, int | None]]:
    return list(ProductCode.objects.order_by("code").values_list("code", "product_id"))


def _line_codes() -> list[tuple[str, int, str]]:
    return list(OrderLine.objects.order_by("order_number", "line_number").values_list(
        "order_number", "line_number", "product_code"))  # fmt: skip


def test_a_line_with_the_code_in_lower_case_is_the_catalogues_product(run_import, xiehe, catalogue):
    day = today_minus(5)
    rows = [line("SO-1", 1, day, xiehe, "yp1001", 2, "10"), line("SO-1", 2, day, xiehe, "Yp1001", 1, "10"),
            line("SO-2", 1, day, xiehe, " ｙｐ１００１ ", 1, "10")]  # fmt: skip
    job = run_import(rows)

    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.DONE, 3, 0)
    assert _line_codes() == [("SO-1", 1, "YP1001"), ("SO-1", 2, "YP1001"), ("SO-2", 1, "YP1001")]
    assert _codes() == [("YP1001", catalogue.product_id)]  # no second code beside the catalogue's
    assert "unknown_products" not in (job.message or "")  # not counted as a product the catalogue lacks
    again = run_import(rows)
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 3)


def test_a_new_code_given_in_two_cases_is_one_code_spelt_as_its_first_line(run_import, xiehe, db):
    day = today_minus(5)
    job = run_import([line("SO-1", 1, day, xiehe, "ab-7", 1, "10"), line("SO-1", 2, day, xiehe, "AB-7", 1, "10")])

    assert job.created_count == 2
    assert _line_codes() == [("SO-1", 1, "ab-7"), ("SO-1", 2, "ab-7")]
    assert _codes() == [("ab-7", None)]
    run_import([line("SO-2", 1, day, xiehe, "AB-7", 1, "10")])  # a later file in another case
    assert _codes() == [("ab-7", None)] and OrderLine.objects.get(order_number="SO-2").product_code == "ab-7"


@pytest.mark.parametrize("block_bytes", [2048, 2 << 20])
def test_the_initial_load_reads_codes_in_any_case_as_the_ordinary_import(
    admin_user, xiehe, catalogue, tmp_path, monkeypatch, block_bytes
):
    """Lines taken in columns and lines checked row by row (a full-width code, the first rows of the preview) in one
    file: the same codes as the ordinary import stores, the catalogue's spelling for a known code and the first line's
    for a new one."""
    monkeypatch.setattr(columnar, "PREVIEW_ROWS", 1)
    monkeypatch.setattr(columnar, "BLOCK_BYTES", block_bytes)
    day = today_minus(5)
    rows = [line("SO-0", 1, day, xiehe, "NEW-1", 1, "10")]
    rows += [line(f"SO-{i}", 1, day, xiehe, code, 1, "10")
             for i, code in enumerate(["yp1001", "ＹＰ１００１", "new-1", "Yp1001", "ｎｅｗ－１", "YP1001"] * 20, 1)]  # fmt: skip
    path = write_csv(tmp_path / "orders.csv", rows)

    call_command("import", "orders", str(path), "--initial-load", "--language", "en")
    loaded = _line_codes(), _codes()
    OrderLine.objects.all().delete()
    ProductCode.objects.exclude(code="YP1001").delete()
    call_command("import", "orders", str(path), "--language", "en")

    assert loaded == (_line_codes(), _codes())
    assert {code for _o, _n, code in loaded[0]} == {"YP1001", "NEW-1"}
    assert loaded[1] == [("NEW-1", None), ("YP1001", catalogue.product_id)]


def test_the_orders_api_reads_the_code_in_any_case(api_for, xiehe, catalogue):
    lines = [{"order_number": "API-1", "line_number": 1, "order_date": str(today_minus(3)),
              "credit_code": xiehe.credit_code, "product_code": "yp1001", "quantity": "1", "unit_price": "10"}]  # fmt: skip
    data = api_for("manager").post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()

    assert (data["status"], data["created"], data["unknown_products"]["lines"]) == ("done", 1, 0)
    assert OrderLine.objects.get(order_number="API-1").product_code == "YP1001"
    assert _codes() == [("YP1001", catalogue.product_id)]


def test_a_code_differing_from_a_recorded_one_only_in_case_is_refused_naming_the_field(catalogue):
    with translation.override("en"):  # the message is lazy: read it in English too
        with pytest.raises(ValidationError) as refused:
            ProductCode(code="yp1001").full_clean()
        assert refused.value.message_dict == {
            "code": ["The product code YP1001 is recorded already: product codes are the same in any letter case."]
        }
    catalogue.name = "安心宁 10mg"
    catalogue.full_clean()  # the code itself is no duplicate of itself
    ProductCode(code="YP1002").full_clean()


def test_the_catalogue_refuses_an_approval_number_differing_only_in_case(api_for, catalogue):
    """The service desk's catalogue keys its products by approval number, read in capitals: 国药准字h20249871 is the
    product on file, refused under its field."""
    response = api_for("admin").post("/api/v1/products/", {
        "brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字h20249871",
        "dosage_form": "片剂", "strength": "5mg",
    }, format="json")  # fmt: skip

    assert response.status_code == 400 and response.json()["approval_number"]
    assert Product.objects.count() == 1
