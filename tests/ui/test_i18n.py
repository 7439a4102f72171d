"""Language: Simplified Chinese by default, English and Traditional Chinese by the switcher."""

from __future__ import annotations


def test_pages_are_in_simplified_chinese_by_default(client):
    page = client.get("/accounts/login/").content.decode()
    assert '<html lang="zh-hans">' in page
    assert '<option value="zh-hans" lang="zh-hans" selected>简体中文</option>' in page


def test_the_switcher_offers_three_languages_and_posts_to_set_language(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'action="/i18n/setlang/" method="post"' in page
    for code in ("zh-hans", "en", "zh-hant"):
        assert f'value="{code}"' in page


def test_switching_to_english_and_back(client_for):
    client = client_for("agent")
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/customers/institutions/"})
    assert response.status_code == 302 and response["Location"] == "/customers/institutions/"
    assert client.cookies["django_language"].value == "en"
    page = client.get("/customers/institutions/").content.decode()
    assert '<html lang="en">' in page
    assert "This field is required." in client.post("/customers/institutions/new/", {}).content.decode()
    client.post("/i18n/setlang/", {"language": "zh-hant", "next": "/"})
    assert '<html lang="zh-hant">' in client.get("/").content.decode()
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    page = client.get("/customers/institutions/new/").content.decode()
    assert '<html lang="zh-hans">' in page
    assert "该字段是必填项。" in client.post("/customers/institutions/new/", {}).content.decode()


def test_the_language_cookie_is_honoured_on_the_sign_in_page(client):
    client.cookies["django_language"] = "en"
    assert '<html lang="en">' in client.get("/accounts/login/").content.decode()


def test_djangos_own_form_messages_read_in_the_products_house_style(client_for):
    client = client_for("agent")
    page = client.post("/customers/institutions/new/", {"name": "院" * 300, "kind": "hospital",
                                                        "credit_code": "9" * 10000})  # fmt: skip
    page = page.content.decode()
    assert "个字（当前 10000 个字）。" in page and "变量" not in page  # Django's own length message (credit code)
    assert "名称过长" in page and "300" in page  # the product's own, naming the field
    page = client.post("/customers/people/new/", {"name": "王芳", "birthday": "2026-02-30"}).content.decode()
    assert "请输入有效的日期。" in page
    client.post("/i18n/setlang/", {"language": "zh-hant"})
    page = client.post("/customers/people/new/", {"name": "王芳", "birthday": "2026-02-30"}).content.decode()
    assert "請輸入有效的日期。" in page


def test_a_form_without_its_security_token_gets_the_products_page_in_the_readers_language(db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.cookies["django_language"] = "zh-hant"
    response = client.post("/accounts/login/", {"username": "x", "password": "y"})
    page = response.content.decode()
    assert response.status_code == 403 and '<html lang="zh-hant">' in page
    assert "DEBUG" not in page and "Forbidden" not in page


def test_the_safety_and_routing_pages_name_things_in_english_on_english_pages(client_for, users):
    from pharmacrm.servicedesk import routing
    from pharmacrm.servicedesk.models import TicketCategory

    routing.save_profile(users["admin"], users["agent"], {"skills": [TicketCategory.objects.get(code="drug_info")]})
    client = client_for("admin")
    client.post("/i18n/setlang/", {"language": "en"})
    page = client.get("/service/assignment/agents/").content.decode()
    assert "Drug information" in page and "药品信息咨询" not in page


def test_a_label_and_its_value_are_punctuated_as_the_page_language_writes(client_for):
    """A Chinese page read "优先级: 紧急" and "类别: 用药错误" (an ASCII colon after a translated label)."""
    import re

    client = client_for("admin")
    policies = re.sub(r"<[^>]+>", "", client.get("/service/settings/sla/").content.decode())
    assert "优先级：" in policies and "优先级:" not in policies and "复杂程度：" in policies
    client.post("/i18n/setlang/", {"language": "en"})
    policies = re.sub(r"<[^>]+>", "", client.get("/service/settings/sla/").content.decode())
    assert "Priority: " in policies and "Priority：" not in policies


def test_english_counts_agree_with_their_numbers(client_for, db):
    """An English page read "1 specialties", "1 orders of 24 over 12 months", "1 tablet(s)" and "1 interactions"."""
    from django.utils import translation

    from pharmacrm.keyaccounts.views_eval import explain
    from pharmacrm.safety.choices import dose_unit_label

    one = {"kind": "hospital", "grade": "3A", "beds": 1, "specialties": 1, "kols": 1}
    two = {"kind": "pharmacy", "beds": 0, "specialties": 2, "kols": 2}
    with translation.override("en"):
        assert explain({"name": "influence", "detail": one}) == "Grade III-A, 1 bed, 1 specialty, 1 KOL"
        assert explain({"name": "influence", "detail": two}) == "type Pharmacy, 0 beds, 2 specialties, 2 KOLs"
        assert explain({"name": "frequency", "detail": {"orders": 1, "reference": 24, "months": 12}}) == (
            "1 order of 24 over 12 months")
        assert [dose_unit_label("{tbl}", n) for n in ("1", "2", "0.5", None)] == [
            "tablet", "tablets", "tablets", "tablet(s)"]
        assert dose_unit_label("mg", "1") == "mg"
    with translation.override("zh-hans"):
        assert explain({"name": "influence", "detail": one}) == "三级甲等，1 张床位，1 个专科，1 位 KOL"
        assert dose_unit_label("{tbl}", "2") == "片"
    page = client_for("pv").get("/safety/reconciliation/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Tickets: 0; interactions: 0." in page
