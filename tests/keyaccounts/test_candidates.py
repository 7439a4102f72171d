"""The key-account candidate list: ranked by score with each candidate's explanation, flags for key accounts
and open proposals, filters, a fixed query count, and the KOL import."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import MarketInfluence, Proposal

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
KOL_HEADER = "统一社会信用代码,客户外部编号,KOL人数,KOL姓名,市场影响力评分,备注\n"


@pytest.fixture
def identified(purchases, users):
    """The identification of June 2026: 华山 83.05 (candidate), 长征 78.30 (key account), 协和 47.38."""
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    return purchases


def names(response) -> list[str]:
    return [r.institution.name for r in response.context["rows"]]


def test_candidates_are_ranked_with_their_explanation_and_flags(client_for, identified, users):
    Proposal.objects.create(number="KP-2026-0001", institution=identified["xiehe"], reason="growth",
                            proposed_by=users["analyst"])  # fmt: skip
    response = client_for("analyst").get("/keyaccounts/candidates/", **EN)
    assert response.status_code == 200 and response.context["period"] == "2026-06"
    rows = response.context["rows"]
    assert [(r.rank, r.institution.name, str(r.score)) for r in rows] == [
        (1, "复旦大学附属华山医院", "83.05"), (2, "上海长征医院", "78.30"), (3, "北京协和医院", "47.38")]  # fmt: skip
    huashan, changzheng, xiehe = rows
    assert huashan.candidate and not huashan.is_key_account and not huashan.open_proposal
    assert changzheng.is_key_account and not changzheng.candidate
    assert xiehe.open_proposal
    html = response.content.decode()
    # the explanation inline: each component's value × weight = contribution
    assert "Market influence 85.00 × 25% = 21.25" in html
    assert "already a key account" in html and "proposal open" in html
    # "Propose" only where it makes sense: not for a key account, nor with a proposal open
    assert f'href="/keyaccounts/proposals/new/?institution={huashan.institution_id}"' in html
    assert (
        f"?institution={changzheng.institution_id}" not in html and f"?institution={xiehe.institution_id}" not in html
    )
    assert response.context["page_obj"].paginator.per_page == 50


def test_the_score_bars_tooltips_take_the_readers_colon(client_for, identified):
    """Each segment of a candidate's score bar is titled with its component and contribution: 市场影响力：21.25 on
    a Chinese page (it read 市场影响力: 21.25, an ASCII colon after Chinese words), "Market influence: 21.25" in
    English."""
    chinese = client_for("analyst").get("/keyaccounts/candidates/").content.decode()
    assert 'title="市场影响力：21.25"' in chinese and 'title="市场影响力: ' not in chinese
    english = client_for("analyst").get("/keyaccounts/candidates/", **EN).content.decode()
    assert 'title="Market influence: 21.25"' in english


def test_a_role_without_the_proposal_right_sees_no_propose_button(client_for, identified):
    html = client_for("kam").get("/keyaccounts/candidates/").content.decode()
    assert "/keyaccounts/proposals/new/" not in html


def test_candidate_filters(client_for, identified):
    c = client_for("manager")
    assert names(c.get("/keyaccounts/candidates/?only=on")) == ["复旦大学附属华山医院"]
    assert names(c.get("/keyaccounts/candidates/?min_score=78.30")) == ["复旦大学附属华山医院", "上海长征医院"]
    assert names(c.get("/keyaccounts/candidates/?province=110000")) == ["北京协和医院"]
    assert names(c.get("/keyaccounts/candidates/?kind=pharmacy")) == []
    # an invalid filter value is ignored rather than failing the list
    assert len(names(c.get("/keyaccounts/candidates/?min_score=abc"))) == 3


def test_a_rep_sees_only_candidates_in_scope(client_for, identified):
    assert names(client_for("rep").get("/keyaccounts/candidates/")) == ["北京协和医院"]


def test_the_candidate_page_costs_a_fixed_number_of_queries(client_for, identified, django_assert_max_num_queries):
    c = client_for("manager")
    c.get("/keyaccounts/candidates/")  # warm the session
    # session, user, periods, count, one query for the rows, key-account and proposal flags, the model …
    with django_assert_max_num_queries(14):
        assert c.get("/keyaccounts/candidates/").status_code == 200


# --- KOL import ----------------------------------------------------------------------------------------


def kol_file(body: str, encoding: str = "utf-8-sig", name: str = "kols.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (KOL_HEADER + body).encode(encoding), content_type="text/csv")


def test_kols_are_imported_and_row_errors_listed(client_for, identified, users):
    huashan, xiehe = identified["huashan"], identified["xiehe"]
    body = (f"{huashan.credit_code},,,王医生、李医生、张医生,80,神经外科带头人\n"
            "91110000000000000X,,2,,,\n"
            f"{xiehe.credit_code},,1,赵医生,150,\n")  # fmt: skip
    response = client_for("analyst").post("/keyaccounts/candidates/kols/", {"file": kol_file(body, "gb18030")}, **EN)
    assert response.status_code == 200
    assert [row for row, _m in response.context["import_errors"]] == [3, 4]
    html = response.content.decode()
    assert "No customer with this credit code" in html and "The assessment is a score from 0 to 100" in html
    influence = MarketInfluence.objects.get()
    # the KOL count comes from the names when the column is empty
    assert (influence.institution_id, influence.kol_count, influence.assessment) == (huashan.pk, 3, 80)
    assert influence.updated_by == users["analyst"]


def test_a_kol_file_with_traditional_headers_is_read(client_for, identified):
    """A zh-Hant user types the headers in Traditional characters, as the page's help shows them."""
    huashan = identified["huashan"]
    body = f"統一社會信用代碼,KOL人數,KOL姓名,市場影響力評分,備註\n{huashan.credit_code},2,王醫生,70,\n"
    upload = SimpleUploadedFile("kols.csv", body.encode("utf-8-sig"), content_type="text/csv")
    response = client_for("analyst").post("/keyaccounts/candidates/kols/", {"file": upload}, HTTP_ACCEPT_LANGUAGE="zh-hant")
    assert response.status_code == 302  # imported, back to the list
    influence = MarketInfluence.objects.get()
    assert (influence.institution_id, influence.kol_count, influence.assessment) == (huashan.pk, 2, 70)


def test_a_kol_file_above_2_mb_is_refused(client_for, identified):
    big = SimpleUploadedFile("big.csv", b"x" * (2 * 1024 * 1024 + 1), content_type="text/csv")
    response = client_for("manager").post("/keyaccounts/candidates/kols/", {"file": big}, **EN)
    assert response.status_code == 400
    assert "larger than 2 MB" in response.content.decode()
    assert not MarketInfluence.objects.exists()


def test_a_kol_file_without_a_customer_column_is_refused(client_for, identified):
    upload = SimpleUploadedFile("k.csv", "名称,KOL人数\n协和,3\n".encode(), content_type="text/csv")
    response = client_for("manager").post("/keyaccounts/candidates/kols/", {"file": upload}, **EN)
    assert response.status_code == 400 and "needs a column" in response.content.decode()


@pytest.mark.parametrize("role, allowed", [("analyst", True), ("manager", True), ("kam", False), ("auditor", False),
                                           ("rep", False), ("agent", False)])  # fmt: skip
def test_only_marketing_and_leadership_import_kols(role, allowed, client_for, identified):
    huashan = identified["huashan"]
    response = client_for(role).post(
        "/keyaccounts/candidates/kols/", {"file": kol_file(f"{huashan.credit_code},,2,,,\n")}
    )
    assert response.status_code == (302 if allowed else 403)
    assert MarketInfluence.objects.exists() == allowed


def test_a_key_accounts_drill_down_says_its_score_is_above_the_threshold(client_for, identified):
    """长征 scores 78.30 against a threshold of 70 but is listed already, so it is no candidate: its page said
    "below the threshold", which it is not."""
    from pharmacrm.keyaccounts.models import Score

    score = Score.objects.get(kind="candidate", institution=identified["changzheng"])
    html = client_for("analyst").get(f"/keyaccounts/evaluations/{score.pk}/", **EN).content.decode()
    assert "above the threshold" in html and "below the threshold" not in html and "already a key account" in html
