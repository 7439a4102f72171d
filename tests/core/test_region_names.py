"""Region names follow the page's script: the official Simplified names, in Traditional characters on
zh-Hant pages (QA found 内蒙古自治区 and 北京市东城区 in Simplified on Traditional pages)."""

import csv

import pytest
from django.utils import translation

from pharmacrm.core.models import Region
from pharmacrm.core.setup import REGIONS_CSV, REGIONS_HANT_CSV, hant_region_names


@pytest.mark.django_db
@pytest.mark.parametrize("lang, expected", [
    ("zh-hant", "北京市東城區"), ("zh-hans", "北京市东城区"), ("en", "Dongcheng District, Beijing"),
])  # fmt: skip
def test_a_region_reads_in_the_pages_script(lang, expected):
    region = Region.objects.get(code="110101")
    with translation.override(lang):
        assert str(region) == expected
        assert region.display_name == ("Dongcheng District" if lang == "en" else expected[3:])


def test_every_region_has_a_traditional_name_and_the_table_matches_the_official_one():
    codes = {r["code"] for r in csv.DictReader(REGIONS_CSV.open(encoding="utf-8"))}
    hant = {r["code"] for r in csv.DictReader(REGIONS_HANT_CSV.open(encoding="utf-8"))}
    assert hant <= codes  # no stray codes
    names, full = hant_region_names()
    assert set(names) == codes == set(full)
    assert names["150000"] == "內蒙古自治區" and full["450103"] == "廣西壯族自治區南寧市青秀區"


@pytest.mark.django_db
def test_the_institution_page_shows_the_traditional_region(client_for, xiehe):
    client = client_for("kam")
    client.post("/i18n/setlang/", {"language": "zh-hant"})
    page = client.get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert 'lang="zh-hant"' in page and "北京市朝陽區" in page and "朝阳区" not in page


@pytest.mark.django_db
def test_the_region_selects_offer_traditional_names_on_zh_hant_pages(client_for):
    client = client_for("manager")
    client.post("/i18n/setlang/", {"language": "zh-hant"})
    form = client.get("/customers/institutions/new/").content.decode()
    assert '<option value="150000">內蒙古自治區</option>' in form and "内蒙古自治区" not in form
    cities = client.get("/customers/regions/", {"province": "210000"}, HTTP_HX_REQUEST="true").content.decode()
    assert "遼寧" not in cities and '<option value="210200">大連市</option>' in cities
    from pharmacrm.keyaccounts.forms_eval import CandidateFilterForm

    with translation.override("zh-hant"):  # the candidate list's province filter
        assert ("150000", "內蒙古自治區") in CandidateFilterForm(periods=[]).fields["province"].choices
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    assert '<option value="150000">内蒙古自治区</option>' in client.get("/customers/institutions/new/").content.decode()
