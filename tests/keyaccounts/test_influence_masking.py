"""A customer's key opinion leaders and influence notes on the evaluation page (王主任 13912345678) were shown in
clear to the analyst, who sees personal data masked: they are masked there as a customer's notes are, on the page
and in its edit form, and the masks the analyst saves back are put back as stored."""

from __future__ import annotations

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts.models import MarketInfluence, Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .test_candidates import identified  # noqa: F401  (fixture)

NAMES = "王主任 13912345678、李医生"
NOTES = "科室秘书邮箱li.na@example.com"


def test_influence_names_and_notes_are_masked_for_the_analyst_and_kept_when_saved_back(client_for, identified):  # noqa: F811
    score = Score.objects.get(institution=identified["huashan"], kind="candidate")
    url = f"/keyaccounts/evaluations/{score.pk}/"
    analyst = client_for("analyst")
    assert analyst.post(url + "influence/", {"kol_names": NAMES, "notes": NOTES, "assessment": 80}).status_code == 302
    response = analyst.get(url)
    page = response.content.decode()
    assert "王主任 139****5678" in page and "l***@example.com" in page
    assert "13912345678" not in page and "li.na@example.com" not in page  # neither shown nor in the form
    form = response.context["influence_form"]
    saved = analyst.post(url + "influence/", {**form.initial, "assessment": 85})
    assert saved.status_code == 302
    stored = MarketInfluence.objects.get(institution=identified["huashan"])
    assert (stored.kol_names, stored.notes, stored.assessment) == (NAMES, NOTES, 85)
    update = AuditEntry.objects.get(object_type="keyaccounts.marketinfluence", action="update")
    assert update.changes == {"assessment": [80, 85]}
    manager = client_for("manager").get(url).content.decode()
    assert "13912345678" in manager and "li.na@example.com" in manager
    auditor = client_for("auditor").get("/accounts/audit/", {"object_type": "keyaccounts.marketinfluence"})
    assert "13912345678" not in auditor.content.decode() and "139****5678" in auditor.content.decode()
