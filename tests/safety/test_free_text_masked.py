"""What pharmacovigilance and QA write about a case that the overseeing roles read (经与报告人 139… 核实): the reason a
report was late, the reason a flag was dismissed, a CAPA action and its effectiveness check and a case's sender's
comments reached the auditor, who oversees safety but sees personal data masked, in clear (the case page, the
submissions and flags of the API, the audit trail, where a CAPA is named by its action). They are masked for the
auditor now; pharmacovigilance and the overseeing roles that see personal data (the manager, the administrator) read
them as typed, and what is stored is not changed. A flag's excerpt and a quality complaint's texts stay
pharmacovigilance's only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.safety import services
from pharmacrm.safety.models import Capa, Submission
from tests.api.conftest import api_for  # noqa: F401  (fixture)

from .conftest import sign_code
from .test_triage_pages import flag_of, make_ticket

pytestmark = pytest.mark.django_db

LATE = "报告人王医生 139-2222-3333 补充资料延迟"
LATE_SHOWN = "报告人王医生 139****3333 补充资料延迟"
DISMISSED = "已与客户 li.zhou@example.com 核实，非不良反应"
DISMISSED_SHOWN = "已与客户 l***@example.com 核实，非不良反应"
ACTION = "回访投诉人 13744445555 并调整热封温度"
ACTION_SHOWN = "回访投诉人 137****5555 并调整热封温度"
CHECK = "三批抽检合格，已电话告知 13866667777"
CHECK_SHOWN = "三批抽检合格，已电话告知 138****7777"
SENDER = "经与报告人 13911112222 核实，因果关系可能"
SENDER_SHOWN = "经与报告人 139****2222 核实，因果关系可能"
CLEAR = ("139-2222-3333", "li.zhou@example.com", "13744445555", "13866667777", "13911112222")


@pytest.fixture
def written(users, make_case, client_for, xiehe):
    pv = users["pv"]
    client_for("pv")  # its authenticator, for the signature
    case = make_case(received_at=timezone.now() - dt.timedelta(days=40))
    case = services.update_case(pv, case, {"sender_comment": SENDER}, version=case.version)
    services.record_submission(pv, case, {"jurisdiction": "CN", "kind": "report", "channel": "nmpa",
                                          "late_reason": LATE}, otp_code=sign_code(pv))  # fmt: skip
    capa = services.add_capa(pv, case, {"action": ACTION, "owner": pv, "due_date": timezone.localdate()})
    services.update_capa(pv, capa, {"status": "effective", "effectiveness_check": CHECK}, version=capa.version)
    flag = flag_of(make_ticket(users, xiehe, subject="患者服药后出现皮疹"))
    services.dismiss_flag(pv, flag, reason=DISMISSED)
    return case, Capa.objects.get(pk=capa.pk), flag


def test_the_auditor_reads_them_masked(client_for, api_for, written):  # noqa: F811
    case, capa, flag = written
    page = client_for("auditor").get(f"/safety/cases/{case.pk}/").content.decode()
    assert LATE_SHOWN in page
    api = api_for("auditor")
    submissions = api.get(f"/api/v1/safety/cases/{case.pk}/submissions/").json()
    assert submissions[0]["late_reason"] == LATE_SHOWN
    assert api.get(f"/api/v1/safety/flags/{flag.pk}/").json()["reason"] == DISMISSED_SHOWN
    texts = [page, str(submissions), str(api.get("/api/v1/safety/flags/").json())]
    for object_type, pk in (("safety.capa", capa.pk), ("safety.safetycase", case.pk), ("safety.flag", flag.pk)):
        query = {"object_type": object_type, "object_id": pk}
        texts += [client_for("auditor").get("/accounts/audit/", query).content.decode(),
                  str(api.get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    capa_entries = api.get("/api/v1/audit/", {"object_type": "safety.capa", "object_id": capa.pk}).json()["results"]
    assert {e["object_repr"] for e in capa_entries} == {ACTION_SHOWN}  # the CAPA named by its action
    assert CHECK_SHOWN in texts[3] and CHECK_SHOWN in texts[4]  # the effectiveness check, before and after
    assert SENDER_SHOWN in texts[5] and SENDER_SHOWN in texts[6]  # the case's sender's comments changed
    assert DISMISSED_SHOWN in texts[7]  # the dismissal's reason, a detail of the flag's entry
    for text in texts:
        assert not any(clear in text for clear in CLEAR), [clear for clear in CLEAR if clear in text]


@pytest.mark.parametrize("role", ["pv", "manager", "admin"])
def test_pharmacovigilance_and_the_overseeing_roles_that_see_personal_data_read_them_as_typed(
    client_for, api_for, written, role  # noqa: F811
):
    case, capa, flag = written
    assert LATE in client_for(role).get(f"/safety/cases/{case.pk}/").content.decode()
    api = api_for(role)
    assert api.get(f"/api/v1/safety/cases/{case.pk}/submissions/").json()[0]["late_reason"] == LATE
    assert api.get(f"/api/v1/safety/flags/{flag.pk}/").json()["reason"] == DISMISSED
    if role == "admin":
        entries = str(api.get("/api/v1/audit/", {"object_type": "safety.capa", "object_id": capa.pk}).json())
        assert ACTION in entries and CHECK in entries
    assert Submission.objects.get(case=case).late_reason == LATE


def test_a_capa_action_longer_than_its_name_is_named_cut_with_a_mark_and_masked_there(
    api_for, written, users  # noqa: F811
):
    case, _capa, _flag = written
    action = "调整热封温度并增加密封性抽检，完成后回访投诉人并请其回电确认，整理记录报质量部审核并存档，投诉人王先生电话 13912345678"
    assert action[:59].endswith(" 13912")  # the name cuts the number
    capa = services.add_capa(users["pv"], case, {"action": action, "owner": users["pv"],
                                                 "due_date": timezone.localdate()})  # fmt: skip
    assert str(capa) == action[:59] + "…"
    entries = api_for("auditor").get("/api/v1/audit/", {"object_type": "safety.capa", "object_id": capa.pk}).json()
    shown = entries["results"][0]["object_repr"]
    assert shown.endswith(" 139****…"), shown  # not 13912…
