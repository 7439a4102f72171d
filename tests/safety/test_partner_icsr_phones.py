"""Session 61: a partner's ICSR withholds every phone number written in its free text, not only a mainland mobile — a
landline with its area code, a number from Hong Kong, Macau, Taiwan or abroad (+852 9123 4567, 00853 …,
(852) 9123 4567, 852-9123-4567), and the reporter's contact from elsewhere however it is spaced. The NMPA's file keeps the text as
written; what is no number (a batch number, a blood pressure, a date, a dose) stays readable."""

from __future__ import annotations

import pytest
from lxml import etree

from pharmacrm.safety.e2b import export

pytestmark = pytest.mark.django_db


def _narrative(case, purpose: str) -> str:
    batch = etree.fromstring(export.build([case], purpose=purpose))
    [text] = batch.xpath("//*[local-name()='investigationEvent']/*[local-name()='text']/text()")
    return text


@pytest.mark.parametrize(("written", "sent"), [
    ("家属电话 +852 9123 4567。", "家属电话 ****。"),
    ("女儿在台湾：+886 912-345-678。", "女儿在台湾：****。"),
    ("Son in the US, +1 (415) 555-0100, called.", "Son in the US, ****, called."),
    ("科室座机 010-6529 5000，家中（0755）1234 5678。", "科室座机 ****，家中****。"),
    ("家属电话 ＋８５２ ９１２３ ４５６７。", "家属电话 ****。"),
    ("家属电话 00853 6612 3456。", "家属电话 ****。"),
    ("家属电话 (852) 9123 4567，(+852) 2812 3456。", "家属电话 ****，****。"),
    ("家属电话 852-9123-4567。", "家属电话 ****。"),
    ("US office +1 415 555 0100-12.", "US office ****."),
    ("Son in the US, 1-415-555-0100 or 1 (415) 555-0199, called.", "Son in the US, **** or ****, called."),
    ("家属在伦敦：44 20 7946 0958。", "家属在伦敦：****。"),
])  # fmt: skip
def test_a_partner_icsr_withholds_a_landline_and_a_number_from_elsewhere(make_case, written, sent):
    case = make_case(narrative=written)
    assert _narrative(case, "partner") == sent
    assert _narrative(case, "regulatory") == written  # the NMPA's file: as written


def test_the_reporters_contact_from_elsewhere_is_withheld_however_it_is_written(make_case):
    case = make_case(reporter_contact="+852 2345 6789-123", narrative="回电 852 2345 6789 或 +852-2345-6789，上午。")
    assert _narrative(case, "partner") == "回电 **** 或 ****，上午。"


def test_what_is_no_phone_number_stays_readable(make_case):
    written = "WXM 出现皮疹，批号 B20260901，血压 130/80，2026-03-15 起 0.5 g 每日 2 次，+2 天后好转，订单 852-1234-5678。"
    assert _narrative(make_case(narrative=written), "partner") == written
    written = "批号：85291234567，订单号 1-415-555-0100，数量 1 250 000，统一社会信用代码 91110108710001554X。"
    assert _narrative(make_case(narrative=written), "partner") == written
