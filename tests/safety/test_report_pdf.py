"""The 药品不良反应/事件报告表 as a PDF: what a PV officer reads back from the file, whatever language they use."""

from __future__ import annotations

import datetime
import re
from io import BytesIO

import pytest
from django.utils import timezone, translation
from pypdf import PdfReader
from pypdf.generic import ContentStream

from pharmacrm.core import pdf as pdfdoc
from pharmacrm.safety import report_pdf
from pharmacrm.safety.choices import (
    Causality,
    Challenge,
    DrugRole,
    Expectedness,
    Outcome,
    Qualification,
    Sex,
)
from pharmacrm.safety.models import CaseVersion, Drug, Reaction, SafetyCase

pytestmark = pytest.mark.django_db

NARRATIVE = (
    "患者因社区获得性肺炎于2026年3月2日上午静脉滴注注射用头孢曲松钠2g，滴注约10分钟后出现全身皮疹、瘙痒，"
    "伴胸闷、心悸，血压降至85/50mmHg。立即停药，给予地塞米松10mg静推、吸氧后症状逐渐缓解。"
)


def _to_unicode(font) -> dict[bytes, str]:
    """A font's ToUnicode map (the one viewers use to copy and search text): 2-byte code → text."""
    cmap = font["/ToUnicode"].get_object().get_data().decode("latin-1")
    return {
        bytes.fromhex(code): bytes.fromhex(text).decode("utf-16-be")
        for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S)
        for code, text in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block)
    }


def _read(data: bytes, *, footer: bool = True) -> list[str]:
    """Each page's text, without spaces, read with pypdf through the fonts' ToUnicode maps. (pypdf's own
    extract_text() takes fpdf2's CID-keyed CJK encoding for a one-byte one and garbles a page that uses
    more than 255 different characters; PDF viewers and poppler read it right.) The footer is the
    8-point text at the bottom of each page."""
    reader = PdfReader(BytesIO(data))
    pages = []
    for page in reader.pages:
        fonts = {name: _to_unicode(font.get_object()) for name, font in page["/Resources"]["/Font"].items()}
        chars: list[str] = []
        to_unicode, size = {}, 0.0
        for operands, operator in ContentStream(page.get_contents(), reader).operations:
            if operator == b"Tf":
                to_unicode, size = fonts[operands[0]], float(operands[1])
            elif operator in (b"Tj", b"TJ") and (footer or size > 8):
                strings = operands[0] if operator == b"TJ" else [operands[0]]
                for string in strings:
                    if isinstance(string, (bytes, str)):
                        raw = string.get_original_bytes() if hasattr(string, "get_original_bytes") else string
                        chars += [to_unicode.get(raw[i : i + 2], "") for i in range(0, len(raw), 2)]
        pages.append(re.sub(r"[\s\x00]+", "", "".join(chars)))
    return pages


def _text(data: bytes) -> list[str]:
    return _read(data)


def _body(data: bytes) -> str:
    """The text of all pages in reading order, without the footers."""
    return "".join(_read(data, footer=False))


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", str(text))


def _zh(text) -> str:
    """A label as the form prints it: in Simplified Chinese, without spaces."""
    with translation.override("zh-hans"):
        return _squeeze(str(text))


def _case(number: str, **fields) -> SafetyCase:
    now = timezone.now()
    case = SafetyCase.objects.create(number=number, kind="adverse_reaction", received_at=now,
                                     latest_received_at=now, **fields)  # fmt: skip
    CaseVersion.objects.create(case=case, sequence=0, received_at=now)
    return case


@pytest.fixture
def complete_case(users) -> SafetyCase:
    case = _case(
        "AE-2026-000017",
        owner=users["pv"],
        patient_name="王秀英",
        patient_sex=Sex.FEMALE,
        patient_birth_date=datetime.date(1961, 5, 8),
        patient_weight_kg="58",
        patient_history="高血压病史10年，青霉素过敏",
        patient_record_number="MZ20260302117",
        reporter_name="李建国",
        reporter_contact="13911112222",
        reporter_institution="北京协和医院",
        reporter_qualification=Qualification.PHYSICIAN,
        expectedness=Expectedness.UNEXPECTED,
        causality_reporter=Causality.PROBABLE,
        causality_company=Causality.POSSIBLE,
        narrative=NARRATIVE,
        reporter_comment="建议修订说明书",
        serious=True,
    )
    Drug.objects.create(
        case=case, role=DrugRole.SUSPECT, brand_name="罗氏芬", generic_name="注射用头孢曲松钠", dosage_form="注射剂",
        approval_number="国药准字H10983036", manufacturer="上海罗氏制药有限公司", batch="B2402117", dose="2",
        dose_unit="g", route="静脉滴注", frequency="每日1次", start_date=datetime.date(2026, 3, 2),
        stop_date=datetime.date(2026, 3, 2), indication="社区获得性肺炎", dechallenge=Challenge.YES,
        rechallenge=Challenge.NOT_DONE,
    )  # fmt: skip
    Drug.objects.create(
        case=case, role=DrugRole.CONCOMITANT, position=1, generic_name="氨氯地平片", batch="C77"
    )
    Reaction.objects.create(case=case, verbatim="全身皮疹伴瘙痒", onset_date=datetime.date(2026, 3, 2),
                            outcome=Outcome.RECOVERED, hospitalisation=True)  # fmt: skip
    Reaction.objects.create(case=case, position=1, verbatim="过敏性休克前期", outcome=Outcome.RECOVERING,
                            life_threatening=True)  # fmt: skip
    CaseVersion.objects.create(case=case, sequence=1, received_at=timezone.now(), summary="补充了血压记录")
    return case


def test_the_form_carries_what_the_case_records(complete_case):
    text = "".join(_text(report_pdf.render(complete_case)))

    for expected in ("AE-2026-000017", "王秀英", "58", "MZ20260302117", "高血压病史10年", "罗氏芬", "注射用头孢曲松钠",
                     "国药准字H10983036", "上海罗氏制药有限公司", "B2402117", "静脉滴注", "社区获得性肺炎",
                     "2026-03-02~2026-03-02", "氨氯地平片", "全身皮疹伴瘙痒", "过敏性休克前期", "李建国", "13911112222",
                     "北京协和医院", "建议修订说明书", "补充了血压记录"):  # fmt: skip
        assert expected in text, expected
    assert _squeeze(NARRATIVE) in text


def test_the_worst_outcome_and_the_assessments_are_ticked(complete_case):
    text = "".join(_text(report_pdf.render(complete_case)))
    ticked, empty = pdfdoc.fonts().boxes

    # of "recovered" and "recovering", the form shows the worse
    assert _zh(Outcome.RECOVERING.label) + ticked in text
    assert _zh(Outcome.RECOVERED.label) + empty in text
    assert _zh(Sex.FEMALE.label) + ticked in text
    assert _zh(Causality.PROBABLE.label) + ticked in text  # by the reporter
    assert _zh(Causality.POSSIBLE.label) + ticked in text  # by the company
    assert _zh(Causality.CERTAIN.label) + ticked not in text
    assert _zh(Qualification.PHYSICIAN.label) + ticked in text
    # seriousness criteria come from the reactions; death was not one of them
    assert _zh(Reaction._meta.get_field("hospitalisation").verbose_name) + ticked in text
    assert _zh(Reaction._meta.get_field("life_threatening").verbose_name) + ticked in text
    assert _zh(Reaction._meta.get_field("death").verbose_name) + empty in text


def test_it_is_printed_in_simplified_chinese_whatever_the_users_language(complete_case):
    def without_time(pages: list[str]) -> list[str]:  # the footer's "generated at" minute may tick between two renders
        return [re.sub(r"生成于[0-9-]+[0-9:]+", "生成于", page) for page in pages]

    with translation.override("en"):
        english = _text(report_pdf.render(complete_case))
        assert translation.get_language() == "en"  # the caller's language is left as it was
    assert without_time(english) == without_time(_text(report_pdf.render(complete_case)))


def test_an_almost_empty_case_prints_a_form_to_fill_in_by_hand():
    case = _case("AE-2026-000018", patient_name="Z.Y.")
    Reaction.objects.create(case=case, verbatim="头晕")

    pages = _text(report_pdf.render(case))
    text = "".join(pages)

    _ticked, empty = pdfdoc.fonts().boxes
    assert "AE-2026-000018" in text and "Z.Y." in text and "头晕" in text
    for outcome in Outcome:  # nothing ticked that the case does not say
        assert _zh(outcome.label) + empty in text
    for causality in Causality:
        assert _zh(causality.label) + empty in text
    assert _zh(Sex.MALE.label) + empty in text and _zh(Sex.FEMALE.label) + empty in text


def test_a_long_narrative_flows_onto_the_next_page_without_losing_text():
    paragraphs = [
        f"第{n}段：患者用药后出现恶心、呕吐，给予对症处理后好转，随访无复发。" * 3 for n in range(1, 41)
    ]
    case = _case("AE-2026-000019", patient_name="张三", narrative="\n".join(paragraphs))

    data = report_pdf.render(case)

    pages = _text(data)
    assert len(pages) >= 2
    assert "第1段" in pages[0] and "第40段" not in pages[0]
    assert _squeeze("".join(paragraphs)) in _body(data)  # the page breaks cut no character


def test_a_page_with_hundreds_of_different_characters_reads_back():
    many = "".join(chr(0x4E00 + n * 7) for n in range(600))  # more than a one-byte encoding can hold
    case = _case("AE-2026-000021", patient_name="李四", narrative=many)

    assert many in _body(report_pdf.render(case))


def test_fields_at_their_longest_still_render(users):
    case = _case("AE-2026-000020", patient_name="长" * 200, reporter_institution="医" * 300)
    Drug.objects.create(
        case=case, brand_name="商" * 250, generic_name="通" * 250, dosage_form="型" * 60, manufacturer="厂" * 200,
        approval_number="国药准字H" + "1" * 31, batch="9" * 35, dose="1" * 20, dose_unit="m" * 20, route="径" * 60,
        frequency="次" * 60, indication="因" * 250,
    )  # fmt: skip
    for n in range(30):
        Reaction.objects.create(case=case, position=n, verbatim=f"反应{n}" + "样" * 240)

    text = "".join(_text(report_pdf.render(case)))

    assert "因" * 250 in text and f"反应29{'样' * 240}" in text


def test_without_a_chinese_font_it_says_which_package_to_install(settings, monkeypatch, tmp_path):
    settings.PHARMACRM_PDF_FONT = str(tmp_path / "missing.ttc")
    with pytest.raises(RuntimeError, match="PHARMACRM_PDF_FONT"):
        pdfdoc.document("x")

    settings.PHARMACRM_PDF_FONT = ""
    monkeypatch.delenv("PHARMACRM_PDF_FONT", raising=False)
    monkeypatch.setattr(pdfdoc, "FONT_CANDIDATES", (str(tmp_path / "none" / "*.ttc"),))
    pdfdoc._find_fonts.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="fonts-noto-cjk"):
            pdfdoc.document("x")
    finally:
        pdfdoc._find_fonts.cache_clear()


def test_the_simplified_chinese_face_of_the_collection_is_used():
    found = pdfdoc.fonts()
    from fontTools.ttLib import TTFont

    face = TTFont(found.regular.path, fontNumber=found.regular.index, lazy=True)
    assert face["name"].getDebugName(1).endswith(" SC")


def test_a_table_wraps_long_cells_and_repeats_its_header_on_the_next_page():
    doc = pdfdoc.document("批次追溯")
    rows = [[f"B{n:04d}", "北京协和医院" * 6, pdfdoc.checkbox("已通知", n % 2 == 0)] for n in range(80)]
    pdfdoc.table(doc, ["批号", "客户", "状态"], rows, (1, 3, 1))

    pages = _text(pdfdoc.to_bytes(doc))

    assert len(pages) >= 2
    assert all("批号客户状态" in page for page in pages)
    assert "B0079" in pages[-1] and ("北京协和医院" * 6) in "".join(pages)
    assert re.search(r"第?\d+\D+\d+", pages[-1])  # the footer's page x/y


def _embedded_fonts(data: bytes) -> list[bytes]:
    reader = PdfReader(BytesIO(data))
    out = []
    for font in reader.pages[0]["/Resources"]["/Font"].values():
        descendant = font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        out.append(descendant["/FontFile3"].get_object().get_data())
    return out


def test_a_document_with_the_glyphs_of_an_earlier_one_embeds_the_same_subset_and_reads_back():
    """Cutting the CJK face down to a document's glyphs is kept per glyph set: an agreement issued again reuses
    the kept subset. The reused one must embed the same bytes and read back the same; another text, its own."""
    def make(text: str) -> bytes:
        doc = pdfdoc.document("重点客户专属服务协议")
        doc.set_font(pdfdoc.FAMILY, "B", 12)
        doc.multi_cell(0, 6, "甲方：北京协和医院", new_x="LMARGIN", new_y="NEXT")
        doc.set_font(pdfdoc.FAMILY, size=10)
        doc.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        return pdfdoc.to_bytes(doc)

    pdfdoc._subsets.clear()
    first = make("技术支持：每季度上门培训一次，售后服务两小时内响应。")
    kept = len(pdfdoc._subsets)
    again = make("技术支持：每季度上门培训一次，售后服务两小时内响应。")
    other = make("鑫淼犇骉：生僻字也照样嵌入。")

    assert kept == 2 and len(pdfdoc._subsets) == 3  # regular and bold kept; the other text added its own regular
    assert _embedded_fonts(again) == _embedded_fonts(first)
    assert _body(again) == _body(first) and "售后服务两小时内响应" in _body(again)
    assert "鑫淼犇骉：生僻字也照样嵌入" in _body(other)
    assert _embedded_fonts(other)[0] != _embedded_fonts(first)[0]
