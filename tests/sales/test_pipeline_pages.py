"""The sales pipeline's pages, export and API per role: the board, the list and its filters, an opportunity's page and
its move form (the lost reason, a second rep's move refused), the funnel page with its chart, the Customer 360 block,
the Excel export (audited) and /api/v1/sales/opportunities/ and /api/v1/sales/funnel/ — a page in each language."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.sales import pipeline
from pharmacrm.sales.models import Opportunity

from .pipeline_world import make

S = Opportunity.Stage
SEE_ALL = ("admin", "manager", "analyst", "auditor")
DENIED = ("agent", "expert", "support", "aftersales", "pv")


def ids_in(html: str, opps) -> set[str]:
    return {k for k, o in opps.items() if f'data-opportunity="{o.pk}"' in html}


def test_the_board_and_the_list_per_role(opportunities, client_for):
    for role in SEE_ALL:
        for url in ("/sales/pipeline/", "/sales/pipeline/?view=list"):
            r = client_for(role).get(url)
            assert r.status_code == 200, (role, url)
            assert ids_in(r.content.decode(), opportunities) == {"o1", "o2", "o3", "o4", "o5", "o6"}, (
                role,
                url,
            )
    rep = client_for("rep").get("/sales/pipeline/?view=list").content.decode()
    assert ids_in(rep, opportunities) == {
        "o1",
        "o2",
        "o3",
        "o5",
        "o6",
    }  # their own and the North team's; not the KAM's
    kam = client_for("kam").get("/sales/pipeline/").content.decode()
    assert ids_in(kam, opportunities) == {"o4"}
    for role in DENIED:
        assert client_for(role).get("/sales/pipeline/").status_code == 403, role
        assert client_for(role).get("/sales/pipeline/funnel/").status_code == 403, role
    board = client_for("manager").get("/sales/pipeline/").content.decode()
    won = board.split('data-stage="won"')[1].split("</section>")[0]
    assert "<span data-count>2</span>" in won and "¥110,000.00" in won


def test_the_list_filters_and_a_bad_filter_is_named(opportunities, client_for, pipeline_world):
    manager = client_for("manager")
    html = manager.get(f"/sales/pipeline/?view=list&owner={pipeline_world['rep2'].pk}").content.decode()
    assert ids_in(html, opportunities) == {"o3", "o6"}
    html = manager.get("/sales/pipeline/?view=list&close_month=2027-01").content.decode()
    assert ids_in(html, opportunities) == {"o4"}
    html = manager.get("/sales/pipeline/?view=list&stage=lost").content.decode()
    assert ids_in(html, opportunities) == {"o2", "o6"}
    r = manager.get("/sales/pipeline/?view=list&close_month=13/2026", HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and "Give a month as 2026-11." in r.content.decode()
    assert ids_in(r.content.decode(), opportunities) == set()


def test_the_close_month_filter_shows_an_example_it_takes(opportunities, client_for):
    """The close-month box's placeholder was a bare "2026-12": now "e.g. 2026-12" in the reader's language (a
    message of the catalogue), the form the filter reads."""
    manager = client_for("manager")
    manager.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    html = manager.get("/sales/pipeline/?view=list").content.decode()
    field = re.search(r'<input[^>]*name="close_month"[^>]*>', html).group(0)
    assert 'placeholder="e.g. 2026-12"' in field
    html = manager.get("/sales/pipeline/?view=list&close_month=2027-01").content.decode()
    assert ids_in(html, opportunities) == {"o4"}


def test_a_stale_opportunity_is_marked(pipeline_world, client_for):
    opp = make(
        pipeline_world["rep"],
        pipeline_world["a"],
        "逾期跟进",
        1_000,
        dt.date(2026, 11, 1),
        close=dt.date(2026, 11, 30),
    )
    fresh = make(
        pipeline_world["rep"],
        pipeline_world["a"],
        "按期",
        1_000,
        dt.date(2026, 11, 1),
        close=dt.date(2999, 1, 1),
    )
    html = client_for("rep").get("/sales/pipeline/?view=list&stale=on").content.decode()
    assert ids_in(html, {"stale": opp, "fresh": fresh}) == {"stale"} and "data-stale" in html
    page = client_for("rep").get(f"/sales/pipeline/{opp.pk}/").content.decode()
    assert "data-stale" in page


def test_the_new_opportunity_form_sent_twice_creates_one(pipeline_world, client_for):
    import re

    rep = client_for("rep")
    a = pipeline_world["a"]
    page = rep.get(f"/sales/pipeline/new/?customer={a.pk}").content.decode()
    token = re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)
    form = {"institution": a.pk, "title": "新品进院", "amount_fen": "120000", "close_date": "2027-02-28",
            "form_token": token}  # fmt: skip
    first = rep.post("/sales/pipeline/new/", form)
    again = rep.post("/sales/pipeline/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # a double click
    opp = Opportunity.objects.get()  # one
    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/sales/pipeline/{opp.pk}/"
    assert "This form was already sent" in again.content.decode()


def test_a_rep_creates_an_opportunity_from_the_form_and_bad_input_is_named(pipeline_world, client_for):
    rep = client_for("rep")
    a = pipeline_world["a"]
    assert rep.get(f"/sales/pipeline/new/?customer={a.pk}").status_code == 200
    r = rep.post("/sales/pipeline/new/", {"institution": a.pk, "title": "新品", "amount_fen": "-3", "close_date": "2026-13-01"},
                 HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    text = r.content.decode()
    assert r.status_code == 400 and "an amount cannot be negative" in text and "Enter a valid date." in text
    assert 'id="field-amount_fen"' in text and not Opportunity.objects.exists()
    r = rep.post("/sales/pipeline/new/", {"institution": a.pk, "title": "新品进院", "amount_fen": "¥120,000",
                                          "close_date": "2027-02-28", "stage": "needs"})  # fmt: skip
    assert r.status_code == 302
    opp = Opportunity.objects.get()
    assert (opp.amount_fen, opp.stage, opp.owner, opp.team) == (
        12_000_000,
        "needs",
        pipeline_world["rep"],
        pipeline_world["north"],
    )
    assert AuditEntry.objects.filter(object_type="sales.opportunity", action="create").count() == 1
    for role in ("analyst", "auditor", "agent"):
        assert client_for(role).get("/sales/pipeline/new/").status_code == 403, role


def test_moving_on_the_page_lost_needs_a_reason_and_a_second_move_is_refused(pipeline_world, client_for):
    opp = make(
        pipeline_world["rep"], pipeline_world["a"], "谈判中", 9_000, dt.date(2026, 11, 1), stage=S.NEGOTIATION
    )
    url = f"/sales/pipeline/{opp.pk}/move/"
    rep, rep2 = client_for("rep"), client_for("rep")
    r = rep.post(url, {"stage": "lost", "version": opp.version}, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and "Give the reason the opportunity was lost." in r.content.decode()
    assert rep.post(url, {"stage": "won", "version": opp.version}).status_code == 302
    r = rep2.post(
        url, {"stage": "lost", "lost_reason": "price", "version": opp.version}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert r.status_code == 409 and "nothing was saved" in r.content.decode()
    assert Opportunity.objects.get(pk=opp.pk).stage == S.WON
    page = rep.get(f"/sales/pipeline/{opp.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="stage-history"' in page and "Negotiation" in page and "Won" in page
    assert (
        client_for("analyst").post(url, {"stage": "lost", "lost_reason": "price", "version": 2}).status_code
        == 403
    )
    assert client_for("kam").get(f"/sales/pipeline/{opp.pk}/").status_code == 404  # another team's


def test_the_funnel_page_per_role_with_its_chart(opportunities, client_for):
    for role in (*SEE_ALL, "rep", "kam"):
        r = client_for(role).get("/sales/pipeline/funnel/?period=2026-Q4")
        assert r.status_code == 200, role
    html = (
        client_for("manager")
        .get("/sales/pipeline/funnel/?period=2026-Q4", HTTP_ACCEPT_LANGUAGE="en")
        .content.decode()
    )
    assert 'id="funnel-data"' in html and "vendor/echarts/echarts.min.js" in html
    row = html.split('<tr data-stage="needs">')[1].split("</tr>")[0]
    assert (
        '<td class="num" data-col="reached">3</td>' in row
        and '<td class="num" data-col="conversion">60%</td>' in row
    )
    assert client_for("manager").get("/sales/pipeline/funnel/?period=2026-Q5").status_code == 400


@pytest.mark.parametrize(("lang", "words"), [("zh-hans", ("销售漏斗", "赢单率")), ("en", ("Sales funnel", "Win rate")),
                                             ("zh-hant", ("銷售漏斗", "贏單率"))])  # fmt: skip
def test_the_funnel_page_in_each_language(opportunities, client_for, lang, words):
    html = (
        client_for("manager")
        .get("/sales/pipeline/funnel/?period=2026-Q4", HTTP_ACCEPT_LANGUAGE=lang)
        .content.decode()
    )
    for word in words:
        assert word in html, (lang, word)


def test_the_customer_360_page_shows_its_open_opportunities(opportunities, pipeline_world, client_for):
    a = pipeline_world["a"]
    page = client_for("rep").get(f"/customers/institutions/{a.pk}/").content.decode()
    assert f"/sales/pipeline/customer/{a.pk}/" in page
    block = client_for("rep").get(f"/sales/pipeline/customer/{a.pk}/").content.decode()
    assert ids_in(block, opportunities) == set()  # 甲's are won or lost
    make(pipeline_world["rep"], a, "甲 新的", 1_000, dt.date(2026, 12, 1))
    block = client_for("manager").get(f"/sales/pipeline/customer/{a.pk}/").content.decode()
    assert "甲 新的" in block
    assert client_for("agent").get(f"/sales/pipeline/customer/{a.pk}/").status_code == 403
    assert (
        f"/sales/pipeline/customer/{a.pk}/"
        not in client_for("agent").get(f"/customers/institutions/{a.pk}/").content.decode()
    )


def test_the_export_per_role_is_audited(opportunities, client_for):
    from openpyxl import load_workbook

    for role in (*SEE_ALL, "rep"):
        r = client_for(role).get("/sales/pipeline/export.xlsx")
        assert r.status_code == 200, role
        titles = {
            row[0]
            for row in load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True, min_row=2)
        }
        expected = {o.title for k, o in opportunities.items() if role != "rep" or k != "o4"}
        assert titles == expected, role
    for role in DENIED:
        assert client_for(role).get("/sales/pipeline/export.xlsx").status_code == 403, role
    entry = AuditEntry.objects.filter(action="export", object_type="sales.opportunity").latest("id")
    assert entry.extra["rows"] == 5 and entry.extra["format"] == "XLSX"


def test_the_api_per_role(opportunities, api_for, pipeline_world):
    for role in SEE_ALL:
        body = api_for(role).get("/api/v1/sales/opportunities/?ordering=id").json()
        assert body["count"] == 6, role
        assert api_for(role).get("/api/v1/sales/funnel/?period=2026-Q4").json()["total"]["reached"] == [
            5,
            3,
            2,
            1,
            1,
        ]
    mine = api_for("rep").get("/api/v1/sales/opportunities/").json()["results"]
    assert {o["id"] for o in mine} == {opportunities[k].pk for k in ("o1", "o2", "o3", "o5", "o6")}
    assert api_for("rep").get(f"/api/v1/sales/opportunities/{opportunities['o4'].pk}/").status_code == 404
    for role in DENIED:
        assert api_for(role).get("/api/v1/sales/opportunities/").status_code == 403, role
        assert api_for(role).get("/api/v1/sales/funnel/").status_code == 403, role
    lost = (
        api_for("manager")
        .get("/api/v1/sales/opportunities/?stage=lost&ordering=-amount_fen")
        .json()["results"]
    )
    assert [o["title"] for o in lost] == [opportunities["o2"].title, opportunities["o6"].title]
    r = api_for("manager").get("/api/v1/sales/funnel/?period=2026-Q5")
    assert r.status_code == 400 and list(r.json()) == ["period"]
    payload = {"customer": pipeline_world["a"].pk, "title": "x", "amount": "1", "close_date": "2026-12-31"}
    for role in ("analyst", "auditor"):
        assert (
            api_for(role).post("/api/v1/sales/opportunities/", payload, format="json").status_code == 403
        ), role


def test_the_api_creates_moves_and_refuses_a_stale_move_naming_the_fields(pipeline_world, api_for):
    api = api_for("rep")
    r = api.post("/api/v1/sales/opportunities/", {"customer": pipeline_world["a"].pk, "title": "API 商机", "amount": "-1",
                                                  "close_date": "2026-02-30"}, format="json")  # fmt: skip
    assert r.status_code == 400 and set(r.json()) == {"amount", "close_date"}
    zh = api_for("rep", lang="zh-hans").post("/api/v1/sales/opportunities/", {"customer": pipeline_world["a"].pk, "title": "t",
                                             "amount": "1", "close_date": "x"}, format="json")  # fmt: skip
    assert zh.status_code == 400 and "日期" in zh.json()["close_date"][0]
    r = api.post("/api/v1/sales/opportunities/", {"customer": pipeline_world["a"].pk, "title": "API 商机", "amount": "25000.50",
                                                  "close_date": "2026-12-31", "stage": "proposal"}, format="json")  # fmt: skip
    assert r.status_code == 201, r.json()
    body = r.json()
    assert (body["amount"], body["stage"], body["probability"], body["weighted"]) == (
        "25000.50",
        "proposal",
        50,
        "12500.25",
    )
    move = f"/api/v1/sales/opportunities/{body['id']}/move/"
    r = api.post(move, {"stage": "lost", "version": body["version"]}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["lost_reason"]
    r = api.post(move, {"stage": "negotiation", "version": body["version"]}, format="json")
    assert r.status_code == 200 and r.json()["stage"] == "negotiation"
    r = api_for("manager").post(move, {"stage": "won", "version": body["version"]}, format="json")
    assert r.status_code == 409 and r.json()["current_version"] == body["version"] + 1
    r = api.patch(f"/api/v1/sales/opportunities/{body['id']}/", {"next_step": "递交报价", "version": body["version"] + 1},
                  format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["next_step"] == "递交报价" and r.json()["amount"] == "25000.50"
    assert pipeline.Opportunity.objects.get(pk=body["id"]).moves.count() == 2


def test_the_navigation_links_the_pipeline_for_those_who_may_see_it(pipeline_world, client_for):
    for role in (*SEE_ALL, "rep", "kam"):
        assert 'href="/sales/pipeline/"' in client_for(role).get("/").content.decode(), role
    for role in DENIED:
        assert 'href="/sales/pipeline/"' not in client_for(role).get("/").content.decode(), role


def test_editing_an_opportunity_opened_before_a_colleagues_change_is_refused(pipeline_world, client_for):
    opp = make(pipeline_world["rep"], pipeline_world["a"], "改金额", 9_000, dt.date(2026, 11, 1))
    url = f"/sales/pipeline/{opp.pk}/edit/"
    form = {"title": "改金额", "amount_fen": "12,000", "close_date": "2027-03-31", "owner": pipeline_world["rep"].pk,
            "team": pipeline_world["north"].pk, "version": opp.version}  # fmt: skip
    assert client_for("rep").get(url).status_code == 200
    assert client_for("rep").post(url, form).status_code == 302
    r = client_for("rep").post(
        url, {**form, "amount_fen": "15,000"}, HTTP_ACCEPT_LANGUAGE="en"
    )  # the old version
    assert r.status_code == 409 and "nothing was saved" in r.content.decode()
    opp.refresh_from_db()
    assert (opp.amount_fen, opp.close_date) == (1_200_000, dt.date(2027, 3, 31))
    entry = AuditEntry.objects.filter(object_type="sales.opportunity", action="update").latest("id")
    assert entry.changes == {"amount": ["9000.00", "12000.00"], "close_date": ["2026-12-31", "2027-03-31"]}
    assert client_for("kam").get(url).status_code == 404
    assert client_for("analyst").get(url).status_code == 403


def test_a_customer_merge_moves_its_opportunities_to_the_record_kept(pipeline_world, admin_user, beijing):
    from pharmacrm.customers import services as customers

    duplicate = customers.create_institution(admin_user, {"name": "北京甲医院（重复）", "kind": "hospital",
                                                          "region": beijing})  # fmt: skip
    opp = make(admin_user, duplicate, "重复记录上的商机", 1_000, dt.date(2026, 11, 1))
    customers.merge(admin_user, pipeline_world["a"], duplicate)
    opp.refresh_from_db()
    assert opp.institution == pipeline_world["a"] and opp.version == 2


def test_the_pipeline_pages_show_no_english_to_a_chinese_user(opportunities, client_for):
    from tests.core.test_translations import english_left

    o1 = opportunities["o1"]
    client = client_for("manager")
    for url in ("/sales/pipeline/", "/sales/pipeline/?view=list", f"/sales/pipeline/{o1.pk}/",
                f"/sales/pipeline/{opportunities['o3'].pk}/", "/sales/pipeline/new/",
                "/sales/pipeline/funnel/?period=2026-Q4"):  # fmt: skip
        page = client.get(url).content.decode()
        assert '<html lang="zh-hans">' in page, url
        assert english_left(page) == [], url
    assert "签约" in client.get(f"/sales/pipeline/{o1.pk}/").content.decode()


@pytest.mark.parametrize("name", ["owner", "team", "customer", "product"])
@pytest.mark.parametrize("raw", ["9" * 23, "1.5", "١"])
def test_an_api_filter_that_is_not_an_id_is_refused_by_name(opportunities, api_for, name, raw):
    # a number longer than a database id reached the database and failed there (500 on SQLite); 1.5 was read as 1
    r = api_for("manager").get("/api/v1/sales/opportunities/", {name: raw})
    assert r.status_code == 400 and list(r.json()) == [name], (r.status_code, r.content[:300])


def test_a_rep_cannot_file_their_opportunity_under_a_team_they_are_not_in(pipeline_world, api_for):
    # it showed in that team's list and funnel, to its lead and members, and left the rep's own team's figures
    payload = {"customer": pipeline_world["a"].pk, "title": "甲 放错团队", "amount": "1000", "close_date": "2026-12-31",
               "team": pipeline_world["east"].pk}
    r = api_for("rep").post("/api/v1/sales/opportunities/", payload, format="json")
    assert r.status_code == 400 and list(r.json()) == ["team"], r.content
    assert not Opportunity.objects.filter(title="甲 放错团队").exists()
    assert api_for("manager").post("/api/v1/sales/opportunities/", payload, format="json").status_code == 201


def test_the_more_and_board_list_links_replace_the_stage_instead_of_adding_one(opportunities, client_for, monkeypatch):
    """The board's "N more…" link added stage=… to the page's query, and the Board / List links kept it: each round
    trip grew the address (stage=won&stage=won&stage=won…)."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    from lxml import html as lh

    from pharmacrm.sales import views_pipeline

    monkeypatch.setattr(views_pipeline, "BOARD_CARDS", 0)  # every card of a column behind its "more" link
    stage = opportunities["o1"].stage
    manager = client_for("manager")
    manager.cookies["django_language"] = "en"

    def links(url: str, text: str) -> list[dict]:
        doc = lh.fromstring(manager.get(url).content)
        return [parse_qs(urlsplit(a.get("href")).query) for a in doc.xpath("//main//a") if text in a.text_content()]

    url = f"/sales/pipeline/?stage={stage}"
    for _round in range(3):
        (more,) = links(url, "more…")
        assert more["stage"] == [stage] and more["view"] == ["list"], more
        (board,) = links(f"/sales/pipeline/?{urlencode(more, doseq=True)}", "Board")  # the list, and back
        assert board == {"stage": [stage]}
        url = f"/sales/pipeline/?{urlencode(board, doseq=True)}"
    # an address grown by the old links comes back to one stage; the filter read is the last one sent
    other = next(s for s in S.values if s != stage)
    (more,) = links(f"/sales/pipeline/?stage={other}&stage={stage}&stage={stage}", "more…")
    assert more["stage"] == [stage]


@pytest.mark.parametrize("lang, bracketed", [("zh-hans", "（{p}%）"), ("en", " ({p}%)")])
def test_an_opportunity_s_stage_probability_is_bracketed_as_the_language_writes_it(opportunities, client_for, lang,
                                                                                    bracketed):
    o1 = opportunities["o1"]
    o1.refresh_from_db()
    page = client_for("manager").get(f"/sales/pipeline/{o1.pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    stage = page.split('data-field="stage">', 1)[1].split("</dd>", 1)[0]
    assert stage.endswith(bracketed.format(p=pipeline.probability(o1.stage))), stage
