"""Every page opens for the roles that may use it and is refused (403) for the others; objects
outside a user's scope are 404; the auditor reads everything and is offered no way to change it."""

from __future__ import annotations

import pytest

from pharmacrm.core.roles import Role
from pharmacrm.customers import services

ALL = {r.value for r in Role}
CHANGERS = {"admin", "manager", "kam", "agent", "rep"}
DELETERS = {"admin", "manager"}
MERGERS = {"admin", "manager"}
AUDIT_READERS = {"admin", "auditor"}
REVEALERS = {"agent", "expert", "support", "aftersales", "auditor"}
CONSENT_RECORDERS = {"admin", "manager", "kam", "agent", "rep"}

# (name, method, url template, roles allowed); {i} = 协和, {p} = its doctor, {r} = 瑞金 (Shanghai)
PAGES = [
    ("home", "get", "/", ALL),
    ("institution list", "get", "/customers/institutions/", ALL),
    ("person list", "get", "/customers/people/", ALL),
    ("search", "get", "/customers/search/?q=xiehe", ALL),
    ("search suggestions", "get", "/customers/search/?q=xiehe&as=suggest", ALL),
    ("region options", "get", "/customers/regions/?province=110000", ALL),
    ("institution 360", "get", "/customers/institutions/{i}/", ALL),
    ("person page", "get", "/customers/people/{p}/", ALL),
    ("new institution", "get", "/customers/institutions/new/", CHANGERS),
    ("edit institution", "get", "/customers/institutions/{i}/edit/", CHANGERS),
    ("new person", "get", "/customers/people/new/", CHANGERS),
    ("edit person", "get", "/customers/people/{p}/edit/", CHANGERS),
    ("delete institution", "get", "/customers/institutions/{i}/delete/", DELETERS),
    ("delete person", "get", "/customers/people/{p}/delete/", DELETERS),
    ("duplicates", "get", "/customers/duplicates/", MERGERS),
    ("merge", "get", "/customers/merge/institution/{i}/{r}/", MERGERS),
    ("audit trail", "get", "/accounts/audit/", AUDIT_READERS),
    ("users", "get", "/accounts/users/", {"admin", "auditor"}),
    ("new user", "get", "/accounts/users/new/", {"admin"}),
    ("edit user", "get", "/accounts/users/{p_user}/", {"admin"}),
    ("reveal", "post", "/customers/people/{p}/reveal/", REVEALERS),
]


def _status(client, method: str, url: str) -> int:
    if method == "post":
        return client.post(url, {"reason": "Returning the doctor's call"}).status_code
    return client.get(url).status_code


@pytest.mark.parametrize(("name", "method", "url", "allowed"), PAGES, ids=[p[0] for p in PAGES])
def test_each_role_gets_the_page_only_if_its_role_allows_it(
    client_for, xiehe, ruijin, doctor, name, method, url, allowed
):
    outside_rep_territory = "{r}" in url  # the rep cannot see 瑞金 at all: a 404, tested below
    from pharmacrm.core.models import User

    url = url.format(i=xiehe.pk, p=doctor.pk, r=ruijin.pk, p_user=User.objects.get(username="agent").pk)
    wrong = {}
    for role in sorted(ALL):
        if role == "rep" and outside_rep_territory:
            continue
        status = _status(client_for(role), method, url)
        expected = 200 if role in allowed else 403
        if status != expected:
            wrong[role] = (status, expected)
    assert wrong == {}, f"{name}: role → (got, expected)"


def test_recording_a_consent_is_refused_to_roles_that_may_not(client_for, doctor):
    url = f"/customers/people/{doctor.pk}/consents/new/"
    form = {"purpose": "marketing", "channel": "phone", "status": "given"}
    wrong = {}
    for role in sorted(ALL):
        status = client_for(role).post(url, form).status_code
        expected = 302 if role in CONSENT_RECORDERS else 403
        if status != expected:
            wrong[role] = (status, expected)
    assert wrong == {}
    assert doctor.consents.count() == len(CONSENT_RECORDERS)


@pytest.mark.parametrize(
    "url",
    [
        "/customers/institutions/{r}/",
        "/customers/institutions/{r}/edit/",
        "/customers/merge/institution/{i}/{r}/",
    ],
)
def test_a_rep_gets_404_for_a_hospital_outside_their_territory(client_for, xiehe, ruijin, url):
    response = client_for("rep").get(url.format(i=xiehe.pk, r=ruijin.pk))
    assert response.status_code in (403, 404)
    if "merge" not in url:
        assert response.status_code == 404


def test_a_rep_does_not_see_other_territories_in_the_list(client_for, xiehe, ruijin):
    page = client_for("rep").get("/customers/institutions/").content.decode()
    assert "北京协和医院" in page
    assert "瑞金" not in page


def test_an_anonymous_visitor_is_sent_to_sign_in(client, xiehe):
    for url in ("/", "/customers/institutions/", f"/customers/institutions/{xiehe.pk}/", "/accounts/audit/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_the_auditor_is_offered_no_way_to_change_anything(client_for, xiehe, doctor):
    auditor = client_for("auditor")
    pages = [
        auditor.get("/customers/institutions/").content.decode(),
        auditor.get(f"/customers/institutions/{xiehe.pk}/").content.decode(),
        auditor.get(f"/customers/people/{doctor.pk}/").content.decode(),
    ]
    for page in pages:
        assert "/new/" not in page
        assert "/edit/" not in page
        assert "/delete/" not in page
        assert "/merge/" not in page
        assert "/consents/new/" not in page
    response = auditor.post(f"/customers/institutions/{xiehe.pk}/edit/", {"name": "改名"})
    assert response.status_code == 403
    xiehe.refresh_from_db()
    assert xiehe.name == "北京协和医院"


def test_navigation_links_only_to_areas_the_role_may_use(client_for):
    agent_page = client_for("agent").get("/").content.decode()
    assert "/customers/institutions/" in agent_page
    assert "/accounts/audit/" not in agent_page
    assert "/customers/duplicates/" not in agent_page
    assert "/customers/import/" not in agent_page
    admin_page = client_for("admin").get("/").content.decode()
    for link in ("/accounts/audit/", "/customers/duplicates/", "/customers/import/"):
        assert link in admin_page
    auditor_page = client_for("auditor").get("/").content.decode()
    assert "/accounts/audit/" in auditor_page and "/customers/import/" not in auditor_page


def test_a_reps_lists_merge_territory_owned_and_team_customers_in_one_order(client_for, users, xiehe, ruijin, admin_user):
    """A rep's list is the union of their territory (Beijing), what they own and what their team owns —
    paged as one list in the chosen order, each record once, and empty (not an error) when a filter
    leaves nothing."""
    owned = services.create_person(admin_user, {"name": "甲医生", "institution": ruijin, "owner": users["rep"]})
    services.create_person(admin_user, {"name": "乙医生", "institution": ruijin})
    team = users["rep"].teams.get()
    both = services.create_person(admin_user, {"name": "丙医生", "institution": xiehe, "team": team})
    rep = client_for("rep")
    page = rep.get("/customers/people/?sort=name").content.decode()
    # in pinyin order: 丙 bing < 甲 jia < 张 zhang
    assert page.index("丙医生") < page.index("甲医生") < page.index("张伟")
    assert "乙医生" not in page
    link = f'href="/customers/people/{both.pk}/"'
    assert page.count(link) == 1  # in the territory and the team's: listed once
    empty = rep.get("/customers/people/?province=440000")
    assert empty.status_code == 200 and "甲医生" not in empty.content.decode()
    shanghai = rep.get("/customers/people/?province=310000").content.decode()
    assert f'href="/customers/people/{owned.pk}/"' in shanghai and "乙医生" not in shanghai
