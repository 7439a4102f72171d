"""A cooperation project's acceptance on the audit page reads in the reader's language, whoever recorded it: its
entries were named by str(acceptance) — its date and result in the actor's language — so an acceptance recorded by
an English-speaking rep read "2026-12-08 Passed" to every Chinese auditor. The entries keep the date and the result's
code; the page labels the result when it is read. Entries written before keep their recorded name unless their
changes hold the codes; the chain still verifies."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import translation

from pharmacrm.cooperation import services
from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry
from tests.cooperation.test_cooperation import TODAY, in_force, pdf, running_project, world  # noqa: F401

pytestmark = pytest.mark.django_db


def page_text(client, language: str) -> str:
    response = client.get("/accounts/audit/", {"object_type": "cooperation.acceptance"}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_an_acceptance_recorded_in_english_reads_in_each_readers_language(world, users, client_for):  # noqa: F811
    day = TODAY().isoformat()
    with translation.override("en"):  # the rep works in English
        project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
        acceptance = services.record_acceptance(users["rep"], project, {
            "accepted_on": TODAY(), "result": "remarks", "remarks": "资料晚交", "standards": "两场会议",
            "accepted_by": "李院长"}, pdf("验收单.pdf"))  # fmt: skip
        rep = client_for("rep")
        rep.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        assert rep.get(reverse("cooperation:acceptance-file", args=[acceptance.pk])).status_code == 200
    entries = list(AuditEntry.objects.filter(object_type="cooperation.acceptance").order_by("seq"))
    assert [e.action for e in entries] == ["create", "export"]
    assert {e.object_repr for e in entries} == {f"{day} remarks"}  # the result's code, not the actor's words
    auditor = client_for("auditor")
    english = page_text(auditor, "en")
    assert english.count(f"{day} Passed with remarks") == 2
    traditional = page_text(auditor, "zh-hant")
    assert traditional.count(f"{day} 有保留通過") == 2 and "Passed" not in traditional
    simplified = page_text(auditor, "zh-hans")
    assert simplified.count(f"{day} 有保留通过") == 2
    assert f"{day} remarks" not in english + traditional + simplified
    # the rep's own recent changes on the home page name it so too, not by the codes the entry keeps
    home = rep.get(reverse("home")).content.decode()
    assert f"{day} Passed with remarks" in home and f"{day} remarks<" not in home
    assert f"{day} 有保留通過" in rep.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert audit.verify().ok


def test_entries_written_before_read_from_their_codes_or_as_recorded(users, client_for):
    # a creation kept the result's code in its changes: named from it; an export of the attachment kept only the
    # name in the actor's language, which stands
    audit.record(AuditEntry.Action.CREATE, ("cooperation.acceptance", "41", "2026-11-02 Passed"), user=users["rep"],
                 changes={"result": [None, "passed"], "accepted_on": [None, "2026-11-02"]})  # fmt: skip
    audit.record(AuditEntry.Action.EXPORT, ("cooperation.acceptance", "41", "2026-11-02 Passed"), user=users["rep"],
                 format="PDF", rows=1)  # fmt: skip
    traditional = page_text(client_for("auditor"), "zh-hant")
    assert "2026-11-02 通過" in traditional and "2026-11-02 Passed" in traditional
    assert audit.verify().ok
