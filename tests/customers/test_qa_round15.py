"""Phone numbers as people write them, from the fifteenth session's QA round: an extension after a dash,
the 0086 prefix before a Beijing number, and a foreign number never taken for a Chinese mobile."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from pharmacrm.customers import normalise


@pytest.mark.parametrize(("written", "digits"), [
    ("010-12345678-123", "01012345678"),  # the extension after a dash, as on business cards
    ("0755-1234567-88", "07551234567"),
    ("0086-10-12345678", "01012345678"),  # Beijing's 10 after the country code is not a mobile's 1
    ("+86 10 1234 5678", "01012345678"),
    ("+86-138-0013-8000", "13800138000"),
    ("400-800-1234", "4008001234"),
    ("010-1234-5678", "01012345678"),
])  # fmt: skip
def test_chinese_numbers_as_written(written, digits):
    assert normalise.validate_any_phone(written) == digits


@pytest.mark.parametrize("foreign", ["+1 415 555 0100", "+44 20 7946 0958", "+852 9123 4567"])
def test_a_foreign_number_is_not_read_as_a_chinese_one(foreign):
    """+1 415 555 0100 was accepted as the mainland mobile 141 5555 0100."""
    with pytest.raises(ValidationError):
        normalise.validate_any_phone(foreign)
    with pytest.raises(ValidationError):
        normalise.validate_mobile(foreign)


def test_an_xlsx_whose_formulas_have_no_results_is_refused_not_imported_empty(users, tmp_path, settings):
    """openpyxl and pandas write formulas without their results: a mobile ="1380013"&"8005" was imported as an
    empty phone with no error. A file saved by Excel or WPS (results kept) imports as usual."""
    from openpyxl import Workbook

    from pharmacrm.customers import importer
    from pharmacrm.customers.models import Person

    settings.VAR_DIR = tmp_path / "var"
    wb = Workbook()
    wb.active.append(["姓名", "角色", "手机"])
    wb.active.append(["张三", "医生", '="1380013"&"8005"'])
    path = tmp_path / "scripted.xlsx"
    wb.save(path)
    with pytest.raises(ValidationError) as exc:
        importer.import_file(path, "people", users["kam"], mode="good")
    assert "WPS" in " ".join(exc.value.messages)
    assert not Person.objects.filter(name="张三").exists()
