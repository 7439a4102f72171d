"""A key account's service team on the audit page reads in the reader's language: a member added or removed was
shown as "User: 7; Role: pm" (the user's id, the team role's code) to every reader, the team made with the account
as "service_team 2", and a de-listing's members and lead let go of the team (core.Team membership) as the raw keys
"team_members" and "team_lead" with user ids. The entries keep what they kept (ids and codes, the chain unchanged):
the page names the users and labels the roles."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ProposalKind, TeamRole

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


def page_text(client, language: str) -> str:
    response = client.get("/accounts/audit/", {"object_type": "keyaccounts.keyaccount"}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_team_members_added_and_removed_read_by_name_and_role_label(users, xiehe, listed, client_for):
    users["kam"].display_name = "王经理"
    users["kam"].save(update_fields=["display_name"])
    with translation.override("en"):  # the manager works in English
        account = listed(xiehe)
        services.add_member(users["manager"], account, users["kam"], TeamRole.PROJECT_MANAGER)
        member = services.add_member(users["manager"], account, users["support"], TeamRole.TECH_SUPPORT)
        services.remove_member(users["manager"], member)
    auditor = client_for("auditor")
    english = page_text(auditor, "en")
    assert "User: 王经理; Role: Project manager" in english
    assert "User: support; Role: Technical support → —" in english  # the removal
    assert "Service team — → Key-account service team · 北京协和医院" in english  # the team made with the account
    traditional = page_text(auditor, "zh-hant")
    assert "使用者：王经理；角色：專案經理" in traditional and "使用者：support；角色：技術支援 → —" in traditional
    assert "服務團隊 — → 重點客戶服務組·北京协和医院" in traditional
    for text in (english, traditional):
        assert "Role: pm" not in text and "角色：pm" not in text and "service_team" not in text
        assert f"User: {users['kam'].pk};" not in text and f"使用者：{users['kam'].pk}；" not in text
    assert audit.verify().ok


def test_a_delisted_accounts_team_members_and_lead_read_by_name(users, xiehe, listed, make_proposal, client_for):
    users["kam"].display_name = "王经理"
    users["kam"].save(update_fields=["display_name"])
    account = listed(xiehe)
    services.add_member(users["manager"], account, users["kam"], TeamRole.PROJECT_MANAGER)
    services.add_member(users["manager"], account, users["expert"], TeamRole.PRODUCT_EXPERT)
    with translation.override("en"):
        proposal = make_proposal(xiehe, kind=ProposalKind.DELIST)
        services.decide(users["manager"], proposal, approve=True, otp_code=sign_code(users["manager"]))  # noqa: F405
    auditor = client_for("auditor")
    english = page_text(auditor, "en")
    assert "Service team 王经理, expert → —" in english or "Service team expert, 王经理 → —" in english
    assert "Team lead 王经理 → —" in english
    traditional = page_text(auditor, "zh-hant")
    assert "服務團隊 王经理, expert → —" in traditional or "服務團隊 expert, 王经理 → —" in traditional
    assert "團隊負責人 王经理 → —" in traditional
    for text in (english, traditional):
        assert "team_members" not in text and "team_lead" not in text
    assert audit.verify().ok
