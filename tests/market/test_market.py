"""Market information and competitor analysis: the share estimate worked by hand, the presence history (the latest
observation is the current one), who reads and writes what per role (pages, API, export), the rep's customer scope,
intelligence written by others, errors naming the field, the audit trail, the brief's fixed query count."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from openpyxl import load_workbook
from rest_framework.test import APIClient

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import MATRIX, Cap, Role
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Region
from pharmacrm.market import services
from pharmacrm.market.models import Competitor, CompetitorProduct, Intelligence, Presence
from pharmacrm.sales.models import MonthlyRollup
from pharmacrm.servicedesk.models import Product
from tests.conftest import data_for_the_module, new_team_north, new_xiehe, role_users

pytestmark = pytest.mark.django_db
ROLES = [r.value for r in Role]
TODAY = timezone.localdate()


def _months_back(n: int) -> dt.date:
    start, _end = services.window(TODAY)
    year, month = start.year, start.month + n
    while month > 12:
        month, year = month - 12, year + 1
    return dt.date(year, month, 1)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    with data_for_the_module(django_db_blocker, tmp_path_factory.mktemp("market")):
        users = role_users(new_team_north())  # the rep works in 北京
        xiehe = new_xiehe(users["admin"], Region.objects.get(code="110105"))
        ruijin = customers.create_institution(users["admin"], {"name": "上海瑞金医院", "kind": "hospital", "grade": "3A",
                                                               "region": Region.objects.get(code="310101")})  # fmt: skip
        ours = Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871",
                                      dosage_form="片剂", strength="5mg×28片")  # fmt: skip
        company = services.save_competitor(users["analyst"], {"name": "华海药业"})
        product = services.save_product(users["analyst"], {
            "company": company.pk, "generic_name": "苯磺酸氨氯地平片", "brand_name": "华络平", "strength": "5mg×28片",
            "our_products": [ours.pk], "vbp_status": "selected", "vbp_batch": "第四批", "reference_price": "10.00"})
        # our purchases at 协和: three months of ¥12,000 inside the window, one before it and one in the current
        # month (neither counts)
        for month, fen in ((_months_back(0), 1_200_000), (_months_back(5), 1_200_000), (_months_back(11), 1_200_000),
                           (_months_back(-1), 9_900_000), (TODAY.replace(day=1), 9_900_000)):  # fmt: skip
            MonthlyRollup.objects.create(institution=xiehe, month=month, amount_fen=fen)
        old = services.record_presence(users["rep"], xiehe, {"product": product.pk, "monthly_volume": "100",
                                       "observed_on": TODAY - dt.timedelta(days=200), "source": "visit"})  # fmt: skip
        new = services.record_presence(users["kam"], xiehe, {"product": product.pk, "monthly_volume": "250",
                                       "share": "40", "observed_on": TODAY - dt.timedelta(days=10), "source": "tender"})
        at_ruijin = services.record_presence(users["analyst"], ruijin, {
            "product": product.pk, "monthly_volume": "80", "observed_on": TODAY, "source": "third_party"})
        intel = services.create_intelligence(users["analyst"], {
            "kind": "tender", "title": "第十批国家集采结果公布", "happened_on": TODAY - dt.timedelta(days=3),
            "importance": "important", "competitor_products": [product.pk], "our_products": [ours.pk]})
        by_rep = services.create_intelligence(users["rep"], {
            "kind": "competitor", "title": "华海在协和开学术会", "happened_on": TODAY, "customers": [xiehe.pk]})
        yield {"users": users, "xiehe": xiehe, "ruijin": ruijin, "ours": ours, "company": company,
               "product": product, "old": old, "new": new, "at_ruijin": at_ruijin, "intel": intel, "by_rep": by_rep}


@pytest.fixture
def users(world):
    return world["users"]


def _api(world, role: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(world["users"][role])
    return client


def test_the_share_estimate_worked_by_hand_and_the_latest_observation_is_current(world, client_for):
    # ours: 3 × ¥12,000 = ¥36,000 in the 12 whole months before this one; theirs: 250 units × ¥10.00 × 12 = ¥30,000
    # (the current observation, not the earlier 100); our share = 36,000 / (36,000 + 30,000) = 54.5 %
    brief = services.customer_brief(world["users"]["manager"], world["xiehe"])
    assert [p.pk for p in brief["current"]] == [world["new"].pk]
    assert brief["estimate"].ours == Decimal("36000")
    assert brief["estimate"].theirs == Decimal("30000")
    assert brief["estimate"].share == Decimal("54.5")
    assert [i.pk for i in brief["intelligence"]] == [world["by_rep"].pk, world["intel"].pk]
    block = client_for("kam").get(f"/market/customer/{world['xiehe'].pk}/").content.decode()
    assert 'id="market-share">54.5<' in block and "华络平" in block and "第十批国家集采结果公布" in block
    # the history keeps both observations; `current` gives the latest per customer and product
    api = _api(world, "manager")
    rows = api.get(f"/api/v1/market/presence/?institution={world['xiehe'].pk}").json()["results"]
    assert [r["monthly_volume"] for r in rows] == [250, 100]
    rows = api.get("/api/v1/market/presence/?current=true").json()["results"]
    assert sorted(r["monthly_volume"] for r in rows) == [80, 250]
    # a newer observation becomes the current one, the earlier stays
    services.record_presence(world["users"]["rep"], world["xiehe"], {
        "product": world["product"].pk, "monthly_volume": "500", "observed_on": TODAY, "source": "visit"})
    assert services.customer_brief(world["users"]["manager"], world["xiehe"])["estimate"].share == Decimal("37.5")
    assert Presence.objects.filter(institution=world["xiehe"]).count() == 3


@pytest.mark.parametrize("lang", ["zh-hans", "en", "zh-hant"])
def test_the_briefs_amounts_are_written_as_money_in_every_language(world, client_for, lang):
    # ¥{{ ours|intcomma }}: ¥36000 on a Chinese page (the locale groups nothing), and a sum with fen kept one place
    # (¥1223679.5) beside the competitors' ¥30,000.00
    MonthlyRollup.objects.filter(institution=world["xiehe"], month=_months_back(5)).update(amount_fen=1_200_050)
    block = client_for("kam").get(f"/market/customer/{world['xiehe'].pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert 'id="market-ours">¥36,000.50<' in block and 'id="market-theirs">¥30,000.00<' in block
    page = client_for("kam").get(f"/market/products/{world['product'].pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert "¥36,000.50" in page


def test_the_customer_360_gives_one_last_12_months_figure_in_the_purchases_and_the_market_blocks(world, client_for):
    """QA: the purchases block counted the calendar months including the current one (¥1,192,504.50), the market
    block the 12 whole months before it (¥1,223,679.50), both "last 12 months". Both read the 12 whole months: the
    month under way (¥99,000 here) and the month before the window are left out of either."""
    pk = world["xiehe"].pk
    MonthlyRollup.objects.filter(institution_id=pk).update(orders=1, lines=1)  # the purchases block draws months with lines
    purchases = client_for("kam").get(f"/sales/customers/{pk}/purchases/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    market = client_for("kam").get(f"/market/customer/{pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-total="amount">¥36,000.00<' in purchases and 'data-total="orders">3<' in purchases
    assert 'id="market-ours">¥36,000.00<' in market


def test_the_brief_costs_the_same_queries_however_much_is_recorded(world, client_for):
    c = client_for("manager")
    url = f"/market/customer/{world['xiehe'].pk}/"
    c.get(url)
    with CaptureQueriesContext(connection) as before:
        assert c.get(url).status_code == 200
    other = services.save_product(world["users"]["analyst"], {"company": world["company"].pk, "generic_name": "氨氯地平",
                                                               "reference_price": "3.00"})  # fmt: skip
    for i in range(4):
        services.record_presence(world["users"]["analyst"], world["xiehe"], {
            "product": other.pk, "monthly_volume": str(10 * i), "observed_on": TODAY, "source": "visit"})
        services.create_intelligence(world["users"]["analyst"], {"kind": "news", "title": f"行业新闻{i}",
                                     "happened_on": TODAY, "province": "110000"})  # fmt: skip
    with CaptureQueriesContext(connection) as after:
        page = c.get(url).content.decode()
    assert "氨氯地平" in page and "行业新闻3" in page
    assert len(after.captured_queries) == len(before.captured_queries)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_the_pages_the_export_and_the_api_and_writes_as_its_capabilities_say(world, client_for, role):
    c = client_for(role)
    w = world
    for url in ("/market/", "/market/competitors/", "/market/intelligence/", f"/market/products/{w['product'].pk}/",
                f"/market/intelligence/{w['intel'].pk}/", "/api/v1/market/competitors/",
                "/api/v1/market/competitor-products/", "/api/v1/market/presence/", "/api/v1/market/intelligence/"):
        assert c.get(url).status_code == 200, url
    export = c.get("/market/?format=xlsx")
    assert export.status_code == 200
    sheet = load_workbook(io.BytesIO(export.content)).active
    names = {row[0] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert names == ({"北京协和医院"} if role == "rep" else {"北京协和医院", "上海瑞金医院"})  # the rep's scope
    assert AuditEntry.objects.filter(action="export", object_type="market.presence").exists()
    manage = Role(role) in MATRIX[Cap.MANAGE_MARKET]
    record = Role(role) in MATRIX[Cap.RECORD_MARKET]
    api = _api(w, role)
    r = api.post("/api/v1/market/competitors/", {"name": f"新对手{role}"}, format="json")
    assert r.status_code == (201 if manage else 403), r.content
    assert c.get("/market/products/new/").status_code == (200 if manage else 403)
    r = api.post("/api/v1/market/presence/", {"institution": w["xiehe"].pk, "product": w["product"].pk,
                                              "monthly_volume": 5, "observed_on": str(TODAY), "source": "visit"},
                 format="json")  # fmt: skip
    assert r.status_code == (201 if record else 403), r.content
    assert c.get(f"/market/customer/{w['xiehe'].pk}/presence/").status_code == (200 if record else 403)
    r = api.post("/api/v1/market/intelligence/", {"kind": "news", "title": "测试", "happened_on": str(TODAY),
                                                  "customers": [w["xiehe"].pk]}, format="json")  # fmt: skip
    assert r.status_code == (201 if record else 403), r.content
    # someone else's intelligence: only the catalogue's keepers change it
    r = api.patch(f"/api/v1/market/intelligence/{w['by_rep'].pk}/", {"title": "改", "version": 1}, format="json")
    assert r.status_code == (200 if manage or role == "rep" else 403), r.content


def test_a_rep_records_only_at_their_customers_and_changes_only_their_own_intelligence(world, client_for):
    w = world
    rep = client_for("rep")
    assert rep.get(f"/market/customer/{w['ruijin'].pk}/presence/").status_code == 404
    assert rep.get(f"/market/customer/{w['ruijin'].pk}/").status_code == 404
    api = _api(w, "rep")
    r = api.post("/api/v1/market/presence/", {"institution": w["ruijin"].pk, "product": w["product"].pk,
                                              "monthly_volume": 5, "observed_on": str(TODAY), "source": "visit"},
                 format="json")  # fmt: skip
    assert r.status_code == 404
    assert not Presence.objects.filter(institution=w["ruijin"], recorded_by=w["users"]["rep"]).exists()
    assert api.get(f"/api/v1/market/presence/{w['at_ruijin'].pk}/").status_code == 404
    # intelligence written by the analyst: the rep reads it, may not change or delete it
    assert rep.get(f"/market/intelligence/{w['intel'].pk}/edit/").status_code == 403
    assert rep.post(f"/market/intelligence/{w['intel'].pk}/delete/", {"version": 1}).status_code == 403
    assert api.delete(f"/api/v1/market/intelligence/{w['intel'].pk}/", HTTP_IF_MATCH='"1"').status_code == 403
    # the rep's intelligence must name one of their customers, and none outside their scope
    r = api.post("/api/v1/market/intelligence/", {"kind": "news", "title": "无客户", "happened_on": str(TODAY)},
                 format="json")  # fmt: skip
    assert r.status_code == 400 and "customers" in r.json()
    r = api.post("/api/v1/market/intelligence/", {"kind": "news", "title": "他人客户", "happened_on": str(TODAY),
                                                  "customers": [w["ruijin"].pk]}, format="json")  # fmt: skip
    assert r.status_code == 400 and "customers" in r.json()
    # the manager deletes the rep's item: audited with what it said
    r = _api(w, "manager").delete(f"/api/v1/market/intelligence/{w['by_rep'].pk}/", HTTP_IF_MATCH='"1"')
    assert r.status_code == 204
    entry = AuditEntry.objects.filter(action="delete", object_type="market.intelligence").latest("seq")
    assert entry.changes["title"] == ["华海在协和开学术会", None]


def test_the_auditor_reads_but_writes_nothing(world, client_for):
    c = client_for("auditor")
    api = _api(world, "auditor")
    assert c.get(f"/market/customer/{world['xiehe'].pk}/").status_code == 200
    assert c.get(f"/market/customer/{world['xiehe'].pk}/presence/").status_code == 403
    assert c.post("/market/competitors/", {"competitor-name": "某公司"}).status_code == 403
    assert api.patch(f"/api/v1/market/competitor-products/{world['product'].pk}/", {"notes": "x", "version": 1},
                     format="json").status_code == 403  # fmt: skip
    assert not Competitor.objects.filter(name="某公司").exists()


def test_bad_input_is_refused_by_field_in_the_readers_language_and_nothing_is_written(world, client_for):
    w = world
    before = Presence.objects.count()
    page = client_for("kam").post(f"/market/customer/{w['xiehe'].pk}/presence/", {
        "product": w["product"].pk, "monthly_volume": "-3", "share": "120",
        "observed_on": str(TODAY + dt.timedelta(days=1)), "source": "visit"})
    assert page.status_code == 400
    text = page.content.decode()
    assert "数量不能为负" in text and "份额是 0 到 100 之间的百分比" in text and "日期不能晚于今天" in text
    r = _api(w, "manager").post("/api/v1/market/presence/", {"institution": w["xiehe"].pk, "product": w["product"].pk,
                                "share": "100.5", "observed_on": str(TODAY)}, format="json",
                                HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400
    assert set(r.json()) >= {"share", "source"}
    assert "between 0 and 100" in r.json()["share"][0]
    assert Presence.objects.count() == before
    r = _api(w, "analyst").post("/api/v1/market/competitors/", {"name": "华海药业"}, format="json")
    assert r.status_code == 400 and "name" in r.json()
    r = _api(w, "analyst").post("/api/v1/market/competitor-products/", {
        "company": w["company"].pk, "generic_name": "X", "reference_price": "-1", "vbp_status": "none",
        "vbp_batch": "第五批"}, format="json")  # fmt: skip
    assert r.status_code == 400 and {"reference_price", "vbp_batch"} <= set(r.json())
    assert not CompetitorProduct.objects.filter(generic_name="X").exists()


def test_intelligence_filters_and_an_edit_with_a_stale_version(world, client_for):
    w = world
    c = client_for("analyst")
    page = c.get("/market/intelligence/?kind=tender").content.decode()
    assert "第十批国家集采结果公布" in page and "华海在协和开学术会" not in page
    page = c.get(f"/market/intelligence/?product={w['product'].pk}&start={TODAY - dt.timedelta(days=5)}").content.decode()
    assert "第十批国家集采结果公布" in page
    assert "第十批国家集采结果公布" not in c.get(f"/market/intelligence/?end={TODAY - dt.timedelta(days=4)}").content.decode()
    api = _api(w, "analyst")
    assert api.patch(f"/api/v1/market/intelligence/{w['intel'].pk}/", {"title": "改1", "version": 1},
                     format="json").status_code == 200  # fmt: skip
    assert api.patch(f"/api/v1/market/intelligence/{w['intel'].pk}/", {"title": "改2", "version": 1},
                     format="json").status_code == 409  # fmt: skip
    entry = AuditEntry.objects.filter(action="update", object_type="market.intelligence").latest("seq")
    assert entry.changes["title"] == ["第十批国家集采结果公布", "改1"]
    assert Intelligence.objects.get(pk=w["intel"].pk).title == "改1"


def test_the_analysis_page_counts_customers_by_province_and_grade_and_drills_down(world, client_for):
    page = client_for("analyst").get("/market/").content.decode()
    assert "华络平" in page and "北京市 1" in page and "上海市 1" in page
    assert 'id="market-data"' in page and "vendor/echarts/echarts.min.js" in page
    rep_page = client_for("rep").get("/market/").content.decode()
    assert "上海市" not in rep_page.split('id="competitor-products"')[1].split("</table>")[0]
    detail = client_for("rep").get(f"/market/products/{world['product'].pk}/").content.decode()
    assert "北京协和医院" in detail and "上海瑞金医院" not in detail


@pytest.mark.parametrize("language", ["zh-hans", "en", "zh-hant"])
def test_the_market_pages_speak_the_readers_language(world, client_for, language):
    """As tests/ui/test_page_languages.py reads the whole demo: no English left on a Chinese page, no Chinese but
    the data on an English one, no Simplified characters on a Traditional one."""
    import re

    import opencc

    from pharmacrm.core.models import User
    from tests.ui.test_page_languages import (
        ALLOWED,
        CJK,
        TAIWAN_AS_WRITTEN,
        TECHNICAL,
        USERNAMES,
        WORD,
        _chunks,
        _data,
        _meant_chinese,
    )

    w = world
    data, data_words = _data()
    meant = _meant_chinese()
    s2tw = opencc.OpenCC("s2tw").convert
    User.objects.filter(pk=w["users"]["analyst"].pk).update(language=language)
    c = client_for("analyst")
    wrong = []
    for url in ("/market/", "/market/competitors/", "/market/intelligence/", f"/market/products/{w['product'].pk}/",
                f"/market/products/{w['product'].pk}/edit/", f"/market/intelligence/{w['intel'].pk}/",
                f"/market/intelligence/{w['intel'].pk}/edit/", f"/market/customer/{w['xiehe'].pk}/",
                f"/market/customer/{w['xiehe'].pk}/presence/"):  # fmt: skip
        page = c.get(url).content.decode()
        main = page.split('<main id="main" class="page">', 1)[-1]
        for chunk in _chunks(main):
            if " ".join(chunk.split()) in data:
                continue
            if language == "en":
                wrong += [(url, chunk) for run in CJK.findall(chunk) if run not in data and run not in meant]
            else:
                words = {x.lower() for x in WORD.findall(re.sub(r"https?://\S+", "", chunk))} - data_words
                wrong += [(url, chunk)] if words - ALLOWED - USERNAMES - TECHNICAL else []
                if language == "zh-hant":
                    for run in CJK.findall(chunk):
                        changed = {(a, b) for a, b in zip(run, s2tw(run), strict=False) if a != b} - TAIWAN_AS_WRITTEN
                        if changed and run not in data and run not in meant:
                            wrong.append((url, chunk))
    assert wrong == []


def test_numbers_typed_with_a_chinese_input_method_are_read_and_anything_else_is_refused_by_field(world):
    w = world
    presence = services.record_presence(w["users"]["kam"], w["xiehe"], {
        "product": w["product"].pk, "monthly_volume": "１,２００", "share": "３５．５％", "observed_on": TODAY,
        "source": "visit"})  # fmt: skip
    assert (presence.monthly_volume, presence.share) == (1200, Decimal("35.50"))
    product = services.save_product(w["users"]["analyst"], {
        "company": w["company"].pk, "generic_name": "缬沙坦胶囊", "brand_name": "代文", "vbp_status": "none",
        "reference_price": "￥12.50"})  # fmt: skip
    assert product.reference_price == Decimal("12.50")
    with translation.override("en"), pytest.raises(ValidationError) as e:
        # 1.2万 was refused already; 1_000 and Arabic-Indic ١٢ were stored as 1000 and 12
        services.record_presence(w["users"]["kam"], w["xiehe"], {
            "product": w["product"].pk, "monthly_volume": "1_000", "share": "١٢", "observed_on": TODAY,
            "source": "visit"})  # fmt: skip
    assert set(e.value.message_dict) == {"monthly_volume", "share"}
    with translation.override("en"), pytest.raises(ValidationError) as e:
        services.save_product(w["users"]["analyst"], {
            "company": w["company"].pk, "generic_name": "缬沙坦胶囊", "brand_name": "代文二", "vbp_status": "none",
            "reference_price": "1.2万"})  # fmt: skip
    assert "with at most two decimals" in e.value.message_dict["reference_price"][0]


def test_a_name_pasted_with_zero_width_characters_or_typed_in_full_width_is_stored_as_the_same_name(world):
    # 华海\u200b药业 (pasted from WeChat) was stored as another company than 华海药业, next to it
    with translation.override("en"), pytest.raises(ValidationError) as e:
        services.save_competitor(world["users"]["analyst"], {"name": "华海\u200b药业"})
    assert "“华海药业” is recorded already" in e.value.message_dict["name"][0]
    company = services.save_competitor(world["users"]["analyst"], {"name": "  ＡＢＣ\u00a0　制药\ufeff "})
    assert company.name == "ABC 制药"
    product = services.save_product(world["users"]["analyst"], {
        "company": company.pk, "generic_name": "缬沙坦\u200b胶囊", "brand_name": "代文", "vbp_status": "none",
        "notes": "第一行\u200b\n第二行"})  # fmt: skip
    assert (product.generic_name, product.notes) == ("缬沙坦胶囊", "第一行\n第二行")


@pytest.mark.parametrize(("language", "separator"), [("zh-hans", "、"), ("en", ", ")])
def test_the_analysis_lists_provinces_and_grades_with_the_readers_separator(world, client_for, language, separator):
    """The competitor analysis listed "北京市 1, 上海市 1" with an English comma on a Chinese page."""
    from lxml import html as lh

    analyst = client_for("analyst")
    analyst.cookies["django_language"] = language
    doc = lh.fromstring(analyst.get("/market/").content)
    row = doc.xpath("//table[@id='competitor-products']/tbody/tr[.//a[contains(., '华络平')]]")[0]
    provinces, grades = (td.text_content().strip() for td in row.xpath("./td")[4:6])
    # the provinces in the reader's language too (Beijing)
    assert sorted(provinces.split(separator)) == (["上海市 1", "北京市 1"] if language == "zh-hans" else ["Beijing 1", "Shanghai 1"])
    other = ", " if separator == "、" else "、"
    assert other not in provinces and other not in grades
