"""Session 62's walk through the key-account programme: what its empty lists say, and in which language's
punctuation. The de-listed tab of the key-account list said "No key accounts here yet. Propose customers from the
candidate list." (proposing lists a customer, it never de-lists one), and a Chinese page joined two sentences with a
space after 。 (暂无重点客户。 请从…; 尚未运行客户评估。 立即运行…)."""

from __future__ import annotations

import pytest

from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _empty_state(page: str) -> str:
    start = page.index('class="empty muted"')
    return page[page.index(">", start) + 1:page.index("</p>", start)]


def test_the_empty_active_list_asks_a_proposer_for_a_proposal_without_a_space_after_the_full_stop(client_for):
    chinese = _empty_state(client_for("analyst").get("/keyaccounts/").content.decode())
    assert chinese == "暂无重点客户。请从候选客户列表中提名客户。"
    english = _empty_state(client_for("analyst").get("/keyaccounts/", **EN).content.decode())
    assert english == "No key accounts here yet. Propose customers from the candidate list."


def test_the_empty_de_listed_tab_says_none_was_de_listed_and_asks_for_no_proposal(client_for):
    page = client_for("analyst").get("/keyaccounts/?status=delisted", **EN).content.decode()
    assert _empty_state(page) == "No key account has been de-listed."
    assert "Propose customers from the candidate list" not in page


def test_the_empty_evaluation_results_read_without_a_space_after_the_full_stop(client_for):
    chinese = _empty_state(client_for("analyst").get("/keyaccounts/evaluations/").content.decode())
    assert chinese == "尚未运行客户评估。立即运行，为近两年内有采购的所有客户评分。"
    english = _empty_state(client_for("analyst").get("/keyaccounts/evaluations/", **EN).content.decode())
    assert english == "No customer evaluation has run yet. Run it now to score every customer who bought in the last two years."


def test_the_360_panel_of_a_candidate_reads_without_a_space_after_the_full_stop(client_for, xiehe, candidate):
    """It read 该客户不是重点客户。 候选客户得分：86.00。 (a line break in the template became a space)."""
    candidate(xiehe, score="86.00")
    url = f"/keyaccounts/customer/{xiehe.pk}/panel/"
    chinese = client_for("kam").get(url).content.decode()
    assert "该客户不是重点客户。候选客户得分：86.00。" in chinese
    english = client_for("kam").get(url, **EN).content.decode()
    assert "This customer is not a key account. Candidate score: 86.00." in english


def test_a_meetings_attendees_follow_the_colon_without_a_space(client_for, meeting):
    """A meeting on the key-account page read 参会人员： 院方：…, a space after the full-width colon."""
    from pharmacrm.keyaccounts.models import Meeting

    Meeting.objects.filter(pk=meeting.pk).update(attendees="院方：药剂科主任；我方：项目经理")
    url = f"/keyaccounts/{meeting.account_id}/"
    chinese = client_for("kam").get(url).content.decode()
    assert "参会人员：院方：药剂科主任；我方：项目经理" in chinese and "参会人员： " not in chinese
    english = client_for("kam").get(url, **EN).content.decode()
    assert "Attendees: 院方：药剂科主任；我方：项目经理" in english


def test_the_progress_workbook_shows_a_score_with_two_places_as_the_pdf_does(client_for, users, xiehe, staffed):
    """The Excel progress report showed an evaluation score of 89.00 as 89 (a number in the General format), while
    the page and the PDF read 89.00."""
    import datetime as dt
    import io
    from decimal import Decimal

    from openpyxl import load_workbook

    from pharmacrm.keyaccounts.models import AccountReview

    account = staffed(xiehe)
    AccountReview.objects.create(account=account, period="2026Q3", start=dt.date(2026, 7, 1),
                                 end=dt.date(2026, 9, 30), score=Decimal("89.00"))  # fmt: skip
    response = client_for("manager").get("/keyaccounts/report.xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet.cell(1, 8).value == "评分"
    score = sheet.cell(2, 8)
    assert score.value == 89 and score.number_format == "0.00"
