"""From a count of the complaint analysis to its tickets (/service/complaints/tickets/): every count on the page
links to a list whose length is that count, under the same filters and scope; a link that is not one of the page's
is refused by name, in the reader's language."""

from __future__ import annotations

import re
from html import unescape

import pytest

from tests.servicedesk import test_complaint_analysis as analysis
from tests.servicedesk.test_complaint_analysis import PAGE, page_client

desk, november = analysis.desk, analysis.november  # the page's own fixtures

DRILL = "/service/complaints/tickets/"
LINK = re.compile(r'<a href="(/service/complaints/tickets/\?[^"]*)">([^<]*)</a>')


def links(html: str) -> list[tuple[str, int]]:
    out = []
    for href, text in LINK.findall(html):
        number = re.fullmatch(r"\s*(\d+)\s*", text)  # a count; "83.3 %" (handled) and "List them" are not
        out.append((unescape(href), int(number.group(1)) if number else None))
    return out


def listed(client, href) -> list[str]:
    response = client.get(href)
    assert response.status_code == 200, (href, response.content[:500])
    html = response.content.decode()
    numbers = re.findall(r'<tr data-number="(TK-[^"]+)"', html)
    assert f"{len(numbers)} complaint" in html  # the count line says as many
    return numbers


def test_every_count_lists_as_many_complaints(users, november):
    client = page_client(users["manager"])
    html = client.get(PAGE, {"period": "2026-11"}).content.decode()
    found = links(html)
    kinds = {re.search(r"by=(\w+)", h).group(1) for h, _ in found if "by=" in h}
    assert {"all", "category", "cause", "product", "province", "impact", "severe", "handled", "reopened"} <= kinds
    for href, count in found:
        if count is None:  # "List them" under a table and the handled share: checked below
            continue
        assert count > 0, href  # a zero is not a link
        assert len(listed(client, href)) == count, href
    # the handled share links to the handled complaints: 5 of the 6 (83.3 %)
    assert ("/service/complaints/tickets/?period=2026-11&by=handled", None) in found
    assert len(listed(client, DRILL + "?period=2026-11&by=handled")) == 5
    assert ("/service/complaints/tickets/?period=2026-11&by=unassessed", None) in found


def test_the_lists_are_the_right_tickets(users, november):
    client = page_client(users["manager"])
    number = {k: t.number for k, t in november.items() if k[0] in "CDN"}
    base = {"period": "2026-11"}
    # all complaints of November: not N1 (not a complaint), not the merged D1, not C7 (December), not C8 (October)
    assert sorted(listed(client, DRILL + "?period=2026-11&by=all")) == sorted(
        number[k] for k in ("C1", "C2", "C3", "C4", "C5", "C6"))
    # the impact matrix: the customer severe / the company moderate is C3; every assessed "minor" for the
    # customer (the row's total) is C2 and C4
    assert listed(client, DRILL + "?period=2026-11&by=impact&key=severe,moderate") == [number["C3"]]
    assert sorted(listed(client, DRILL + "?period=2026-11&by=impact&key=minor,*")) == sorted([number["C2"], number["C4"]])
    # C6 is open: no root cause yet, not assessed
    assert listed(client, DRILL + "?period=2026-11&by=cause&key=") == [number["C6"]]
    assert listed(client, DRILL + "?period=2026-11&by=unassessed") == [number["C6"]]
    assert listed(client, DRILL + "?period=2026-11&by=reopened") == [number["C4"]]
    assert listed(client, DRILL + "?period=2026-11&by=product&key=" + str(november["P2"].pk)) == [number["C3"]]
    # the trend's October: C8 (received 23:50 Beijing on the 31st)
    assert listed(client, DRILL + "?period=2026-10&by=all") == [number["C8"]]
    # the filters hold: the product P1's complaints with root cause logistics
    assert sorted(listed(client, DRILL + f"?period=2026-11&product={november['P1'].pk}&by=cause&key=logistics")) \
        == sorted([number["C1"], number["C2"]])
    assert base  # the period is part of every link


def test_a_team_lead_lists_only_the_teams_they_lead(users, desk, november):
    client = page_client(desk["lead"])
    numbers = listed(client, DRILL + "?period=2026-11&by=all")
    assert november["C3"].number not in numbers and len(numbers) == 5  # C3 is 二组's
    other = client.get(DRILL, {"period": "2026-11", "team": desk["two"].pk})  # not a team they may choose
    assert other.status_code == 400 and "data-number" not in other.content.decode()


@pytest.mark.parametrize("role", ["agent", "expert", "support", "aftersales", "kam", "rep"])
def test_those_refused_the_analysis_are_refused_its_lists(users, november, role):
    assert page_client(users[role]).get(DRILL, {"period": "2026-11"}).status_code == 403


@pytest.mark.parametrize("role", ["manager", "admin", "analyst", "auditor", "pv"])
def test_those_who_see_the_analysis_see_its_lists(users, november, role):
    assert len(listed(page_client(users[role]), DRILL + "?period=2026-11&by=severe")) == 1  # C3


@pytest.mark.parametrize("params", [
    {"by": "colour"}, {"by": "impact", "key": "huge,minor"}, {"by": "impact", "key": "minor"},
    {"by": "category", "key": "x"}, {"by": "cause", "key": "weather"}, {"period": "2026-13"},
    # an id longer than the database's reached it and failed there (500)
    {"by": "category", "key": "9" * 23}, {"by": "product", "key": "9" * 23},
])
def test_a_link_that_is_not_the_pages_is_refused_with_a_reason(users, november, params):
    response = page_client(users["manager"]).get(DRILL, {"period": "2026-11", **params})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html and "data-number" not in html
    assert ("the link is not valid" in html) or ("Give a month (2026-11)" in html)


@pytest.mark.parametrize("lang, title, reason", [
    ("zh-hans", "投诉", "链接无效"), ("en", "Complaints", "the link is not valid"), ("zh-hant", "投訴", "連結無效"),
])
def test_the_list_and_its_refusal_in_three_languages(users, november, lang, title, reason):
    client = page_client(users["manager"])
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = lang
    ok = client.get(DRILL, {"period": "2026-11", "by": "severe"}).content.decode()
    assert title in ok
    bad = client.get(DRILL, {"period": "2026-11", "by": "colour"}).content.decode()
    assert reason in bad
