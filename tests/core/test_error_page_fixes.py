"""Error answers: the 403 page says why when our code said it; list filters refuse an id too large for the
database instead of failing; under /api/ a 404, 403, 400 or 500 is JSON {"detail": …} in the request's
language, as DRF's own errors; the API's own messages are translatable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory
from django.urls import get_resolver
from django.utils import translation

from pharmacrm.core import views as core_views
from pharmacrm.customers import services
from pharmacrm.customers.models import Institution

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
GENERIC = "Your role does not allow this page or action."
HUGE = "99999999999999999999"  # beyond 2**63


# --- 1. the 403 page says why ---------------------------------------------------------------------------------


def test_editing_a_record_merged_meanwhile_says_so_on_the_403_page(client_for, users, xiehe, beijing):
    duplicate = services.create_institution(users["admin"], {"name": "协和医院", "kind": "hospital", "region": beijing})
    client = client_for("kam")
    assert client.get(f"/customers/institutions/{duplicate.pk}/edit/").status_code == 200  # opened before the merge
    services.merge(users["admin"], Institution.objects.get(pk=xiehe.pk), duplicate)
    response = client.post(f"/customers/institutions/{duplicate.pk}/edit/", {"name": "协和医院"}, **EN)
    page = response.content.decode()
    assert response.status_code == 403
    assert "This record was merged into another one and can no longer be changed." in page
    assert GENERIC not in page
    link = f'<a href="/customers/institutions/{xiehe.pk}/">Open 北京协和医院, the record it was merged into</a>'
    assert link in page


def test_a_refusal_without_a_reason_keeps_the_generic_text(users):
    request = RequestFactory().get("/customers/", **EN)
    request.user = users["kam"]
    with translation.override("en"):
        for exception in (PermissionDenied(), PermissionDenied(""), PermissionDenied({"not": "a message"})):
            response = core_views.permission_denied(request, exception)
            assert response.status_code == 403 and GENERIC in response.content.decode()


def test_the_403_page_links_where_the_exception_points(users, xiehe):
    request = RequestFactory().get("/customers/", **EN)
    request.user = users["kam"]
    denied = PermissionDenied("This record was merged into another one and can no longer be changed.")
    denied.link = (f"/customers/institutions/{xiehe.pk}/", "北京协和医院")
    with translation.override("en"):
        page = core_views.permission_denied(request, denied).content.decode()
    assert f'<a href="/customers/institutions/{xiehe.pk}/">北京协和医院</a>' in page


def test_django_uses_the_projects_error_handlers():
    resolver = get_resolver()
    assert resolver.resolve_error_handler(403) is core_views.permission_denied
    assert resolver.resolve_error_handler(404) is core_views.page_not_found
    assert resolver.resolve_error_handler(500) is core_views.server_error
    assert resolver.resolve_error_handler(400) is core_views.bad_request


# --- 3. a crafted id in a list filter -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [HUGE, "0", "-5", "abc"])
def test_an_impossible_institution_filter_is_refused_not_a_server_error(client_for, xiehe, value):
    response = client_for("kam").get("/customers/people/", {"institution": value}, **EN)
    page = response.content.decode()
    assert response.status_code == 200
    assert "No such customer, or you may not see it." in page
    assert "A filter with an error was not applied" in page
    assert "张伟" in page  # the list itself still works


def test_a_real_institution_filter_still_filters(client_for, xiehe, ruijin):
    page = client_for("admin").get("/customers/people/", {"institution": xiehe.pk}, **EN).content.decode()
    assert "张伟" in page and "No such customer" not in page


@pytest.mark.parametrize(
    "url, params",
    [
        ("/customers/institutions/", {"owner": HUGE}),
        ("/customers/people/", {"owner": HUGE}),
        ("/customers/search/", {"owner": HUGE, "q": "协和"}),
        ("/sales/orders/", {"customer": HUGE}),
        ("/service/", {"category": HUGE}),
        ("/service/board/", {"team": HUGE}),
    ],
)
def test_other_list_filters_take_a_huge_id_without_failing(client_for, xiehe, url, params):
    assert client_for("admin").get(url, params, **EN).status_code == 200


@pytest.mark.parametrize("name", ["institution", "owner"])
def test_an_export_ignores_a_huge_id_filter_as_the_lists_do(client_for, xiehe, name):
    assert client_for("admin").get("/customers/export/people.xlsx", {name: HUGE}).status_code in (200, 202, 302)


@pytest.mark.parametrize("url", ["/api/v1/export/people.csv", "/api/v1/export/institutions.csv"])
@pytest.mark.parametrize("name", ["institution", "owner"])
def test_an_api_export_refuses_a_huge_id_filter_naming_the_field(client_for, xiehe, url, name):
    response = client_for("admin").get(url, {name: HUGE}, **EN)
    assert response.status_code == 400 and list(response.json()) == [name]


# --- 4. JSON errors under /api/ -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/api/v1/institutions/abc/"),
        ("get", "/api/v1/nosuch/"),
        ("delete", "/api/v1/calendars/1/overrides/1/"),
        ("put", "/api/v1/scoring-models/1/"),
    ],
)
def test_an_unknown_api_address_answers_json_in_the_requests_language(client_for, method, url):
    client = client_for("kam")
    english = getattr(client, method)(url, **EN)
    assert english.status_code == 404 and english["Content-Type"].startswith("application/json")
    assert english.json() == {"detail": "Not found."}
    chinese = getattr(client, method)(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.status_code == 404 and chinese.json() == {"detail": "未找到。"}


def test_a_page_outside_the_api_keeps_the_html_404(client_for):
    response = client_for("kam").get("/customers/nosuch/", **EN)
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def _api_request(path="/api/v1/something/"):
    return RequestFactory().get(path)


def test_a_server_error_under_the_api_is_json():
    with translation.override("en"):
        response = core_views.server_error(_api_request())
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.content.decode() == '{"detail": "A server error occurred."}'
    with translation.override("zh-hans"):
        assert "服务器出现了错误" in core_views.server_error(_api_request()).content.decode()
    page = core_views.server_error(RequestFactory().get("/customers/"))
    assert page.status_code == 500 and b"<html" in page.content


def test_a_django_403_or_404_under_the_api_is_json_with_our_message():
    with translation.override("en"):
        bare = core_views.permission_denied(_api_request(), PermissionDenied())
        ours = core_views.permission_denied(_api_request(), PermissionDenied("Only the author may change this."))
        missing = core_views.page_not_found(_api_request(), Http404("No Institution matches the given query."))
        bad = core_views.bad_request(_api_request(), Exception())
    assert bare.status_code == 403
    assert bare.content.decode() == '{"detail": "You do not have permission to perform this action."}'
    assert ours.content.decode() == '{"detail": "Only the author may change this."}'
    assert missing.status_code == 404 and missing.content.decode() == '{"detail": "Not found."}'
    assert bad.status_code == 400 and bad.content.decode() == '{"detail": "Malformed request."}'


# --- 5. the API's own messages are translatable ---------------------------------------------------------------

RAISED = {"ValidationError", "Conflict", "NotFound", "PermissionDenied", "ParseError", "APIException"}


def _bare_strings(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.JoinedStr):
        yield node
    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        for element in node.elts:
            yield from _bare_strings(element)
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from _bare_strings(value)


def test_no_api_error_message_is_a_bare_string():
    root = Path(__file__).resolve().parents[2] / "pharmacrm"
    bare = []
    for path in sorted(root.glob("*/api*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in RAISED:
                args = list(node.args) + [k.value for k in node.keywords if k.arg == "detail"]
                bare += [f"{path.relative_to(root)}:{s.lineno}" for a in args for s in _bare_strings(a)]
    assert bare == [], "messages not wrapped in gettext"


def test_mark_read_without_ids_answers_in_the_requests_language(client_for):
    from django.utils.translation import gettext

    message = "Give the ids to mark read, or all=true."
    client = client_for("kam")
    english = client.post("/api/v1/notifications/mark-read/", {}, content_type="application/json", **EN)
    assert english.status_code == 400 and english.json() == {"ids": [message]}
    chinese = client.post("/api/v1/notifications/mark-read/", {}, content_type="application/json",
                          HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    with translation.override("zh-hans"):
        assert chinese.json() == {"ids": [gettext(message)]}


# --- a write that gave up waiting for the database --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_save_that_finds_the_database_busy_says_so_and_saves_nothing(client_for, api_for, xiehe):
    """An all-or-nothing import holds SQLite's one writer for minutes; a rep saving a hospital meanwhile gave up
    after the wait and read "Server error". Now they read that the database was busy, nothing was saved and to
    try again (503, Retry-After), on the page and in the API. Here another connection really holds the write:
    SQLite's lock, or on PostgreSQL the row's lock with a lock_timeout set for this connection."""
    import threading

    from django.db import connection, transaction

    holding, release = threading.Event(), threading.Event()
    web, api_client = client_for("admin"), api_for("admin")  # signed in before the database is held

    def hold():
        try:
            with transaction.atomic():
                Institution.objects.filter(pk=xiehe.pk).update(beds=1500)
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    postgres = connection.vendor == "postgresql"
    try:
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '200ms'")
        form = {"name": "改名", "kind": xiehe.kind, "credit_code": xiehe.credit_code, "tier": xiehe.tier,
                "stage": xiehe.stage, "province": "110000", "city": "110100", "district": "110105", "version": 1}
        page = web.post(f"/customers/institutions/{xiehe.pk}/edit/", form,
                                        HTTP_REFERER=f"http://testserver/customers/institutions/{xiehe.pk}/edit/",
                                        HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
        api = api_client.patch(f"/api/v1/institutions/{xiehe.pk}/", {"beds": 1, "version": 1}, format="json",
                                     HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    finally:
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        release.set()
        holder.join()
    assert page.status_code == 503 and page["Retry-After"] == "30"
    text = page.content.decode()
    assert "数据库正忙" in text and "未保存" in text
    assert f'href="http://testserver/customers/institutions/{xiehe.pk}/edit/"' in text
    assert api.status_code == 503 and "database is busy" in api.json()["detail"]
    xiehe.refresh_from_db()
    assert xiehe.name == "北京协和医院" and xiehe.beds == 1500  # only the holder's change
