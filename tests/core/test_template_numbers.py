"""How pages write weights and amounts: the same on every page, whatever the language's number format."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pharmacrm.core.templatetags.crm import grouped, percent, share_percent, yuan


@pytest.mark.parametrize(
    ("value", "shown"), [("0.3000", "30%"), ("0.1250", "12.5%"), (Decimal("0.5"), "50%"), ("1", "100%"), ("0.1225", "12.25%"), ("x", "x")]
)
def test_weights_show_as_percentages(value, shown):
    assert share_percent(value) == shown


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [(12.5, "", "12.5%"), (Decimal("12.50"), "", "12.5%"), (12, "", "12%"), (12.0, "", "12%"), (33.333, "", "33.3%"),
     (Decimal("-12.25"), "", "-12.3%"), (-0.04, "", "0%"), (None, "", "—"), ("", "", "—"), ("x", "", "x"),
     (0.125, "fraction", "12.5%"), ("0.3000", "fraction", "30%"), (1, "fraction", "100%"),
     (Decimal("2.25"), "exact", "2.25%"), (Decimal("30.00"), "exact", "30%"), (None, "exact", "—")],
)  # fmt: skip
def test_percentages_read_as_chinese_business_software_writes_them(value, kind, shown):
    """One form on every page, chart label and text export: "12.5%" — no space, one place unless the figure needs
    none. Pages wrote "12.5%", "12.50 %", "12.5 %" and 0.125 for the same kind of figure."""
    assert percent(value, kind) == shown


@pytest.mark.parametrize(
    ("value", "shown"), [(Decimal("1463907"), "1,463,907.00"), (Decimal("555454.5"), "555,454.50"), (None, "—"), (0, "0.00")]
)
def test_amounts_are_grouped_by_thousands(value, shown):
    assert grouped(value) == shown


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [(Decimal("1223679.5"), "", "¥1,223,679.50"), ("12000", "", "¥12,000.00"), (Decimal("-1200"), "", "-¥1,200.00"),
     (12_345_650, "fen", "¥123,456.50"), (0, "", "¥0.00"), (None, "", "—"), ("x", "", "x")],
)  # fmt: skip
def test_money_is_written_as_the_purchases_write_it(value, unit, shown):
    assert yuan(value, unit) == shown
