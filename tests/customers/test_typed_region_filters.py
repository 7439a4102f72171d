"""The customer list pages and their export read a region code typed in full-width digits (１１００００), where it was
an unknown choice, ignored, and every region was listed (the API's side: tests/api/test_typed_region_filters_api.py)
— on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


# --- a region code in full-width digits ----------------------------------------------------------------------


def test_the_list_page_and_its_export_read_a_province_typed_in_full_width_digits(client_for, xiehe, ruijin, settings,
                                                                                   tmp_path):
    settings.VAR_DIR = tmp_path
    client = client_for("admin")
    page = client.get(reverse("customers:institutions"), {"province": "１１００００"})
    assert page.status_code == 200
    assert page.context["form"].cleaned_data["province"] == "110000"
    assert "北京协和医院" in page.content.decode() and "瑞金医院" not in page.content.decode()
    export = client.get(reverse("customers:export", args=["institutions", "csv"]), {"province": "１１００００"})
    assert export.status_code == 200
    body = b"".join(export.streaming_content).decode("utf-8-sig")
    assert "北京协和医院" in body and "瑞金医院" not in body
