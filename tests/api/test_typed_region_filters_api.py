"""The API's region filters (the institution and people lists, search) read a code typed in full-width digits
(１１００００) and still refuse what is no code — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def _names(answer) -> set[str]:
    return {row["name"] for row in answer.json()["results"]}


@pytest.mark.parametrize("code", ["１１００００", "１１０１０５", " 110000 "])
def test_the_apis_region_filter_reads_full_width_digits(api_for, xiehe, ruijin, code):
    r = api_for("admin").get("/api/v1/institutions/", {"region": code})
    assert r.status_code == 200, r.content
    assert _names(r) == {"北京协和医院", "心内科"}  # 协和 and its department, not 瑞金 in Shanghai
    r = api_for("admin").get("/api/v1/search/", {"q": "医院", "region": code})
    assert r.status_code == 200, r.content
    assert {hit["name"] for hit in r.json()["results"] if hit["kind"] == "institution"} == {"北京协和医院"}


def test_the_apis_region_filter_still_refuses_what_is_no_code(api_for, xiehe):
    for code in ("北京", "١١٠٠٠٠", "119999"):
        r = api_for("admin").get("/api/v1/institutions/", {"region": code})
        assert r.status_code == 400 and list(r.json()) == ["region"], (code, r.content)
