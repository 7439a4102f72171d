"""E2B(R3) export: a case becomes a schema-valid ICSR with each value at its element, and the business rules
refuse a batch with the list of what to fill in."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from lxml import etree

from pharmacrm.safety.e2b import export, rules, schema
from pharmacrm.safety.models import CaseFile, CaseVersion, Drug, Reaction, SafetyCase

XSI = "http://www.w3.org/2001/XMLSchema-instance"
RECEIVED = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def make_case(number: str = "AE-2026-000001", **fields) -> SafetyCase:
    """A complete case, as PV would have it before the submission: Chinese text, MedDRA-coded reactions."""
    data = {
        "kind": "adverse_reaction", "received_at": RECEIVED, "latest_received_at": RECEIVED + dt.timedelta(days=3),
        "patient_name": "张某", "patient_sex": "2", "patient_birth_date": dt.date(1980, 5, 17), "patient_age": "45",
        "patient_age_unit": "a", "patient_weight_kg": "58.5", "patient_height_cm": "162",
        "patient_history": "高血压病史五年", "patient_record_number": "ZY2026-0042",
        "reporter_name": "李医生", "reporter_contact": "010-6915 6114", "reporter_institution": "北京协和医院",
        "reporter_qualification": "1", "reporter_country": "CN",
        "causality_reporter": "probable", "causality_company": "possible",
        "narrative": "患者服用阿莫西林胶囊后出现全身皮疹伴瘙痒，停药后好转。", "reporter_comment": "考虑与药物相关",
        "sender_comment": "公司评价：可能相关", "serious": False,
    } | fields  # fmt: skip
    case = SafetyCase.objects.create(number=number, **data)
    CaseVersion.objects.create(case=case, sequence=0, received_at=RECEIVED)
    Reaction.objects.create(case=case, position=0, verbatim="全身皮疹", language="zho", meddra_version="27.0",
                            meddra_llt="10037844", onset_date=dt.date(2026, 3, 1), end_date=dt.date(2026, 3, 4),
                            outcome="1", hospitalisation=True)  # fmt: skip
    Reaction.objects.create(case=case, position=1, verbatim="瘙痒", language="zho", meddra_version="27.0",
                            meddra_llt="10037087", outcome="2")  # fmt: skip
    Drug.objects.create(case=case, position=0, role="1", brand_name="阿莫灵", generic_name="阿莫西林胶囊",
                        approval_number="国药准字H20000001", manufacturer="PharmaCRM 演示药业有限公司",
                        dosage_form="胶囊", batch="B240301", dose="0.5", dose_unit="g", route="口服",
                        frequency="每日3次", start_date=dt.date(2026, 2, 27), stop_date=dt.date(2026, 3, 1),
                        indication="上呼吸道感染", action_taken="1", dechallenge="yes", rechallenge="not_done")  # fmt: skip
    Drug.objects.create(case=case, position=1, role="2", generic_name="对乙酰氨基酚片")
    return case


def plain(xml: bytes) -> etree._Element:
    """The document without its default namespace, so that the FDA table's XPaths apply as written."""
    root = etree.fromstring(xml)
    for element in root.iter(etree.Element):
        element.tag = etree.QName(element).localname
    etree.cleanup_namespaces(root)
    return root


def at(doc, element: str, r: int = 1, i: int = 1, k: int = 1) -> list:
    """The values at an element's XPath from the FDA data-element table ([r], [i], [k] as given)."""
    path = rules.elements()[element].xpath
    path = path.replace("[r]", f"[{r}]").replace("[i]", f"[{i}]").replace("[k]", f"[{k}]")
    return [str(v) for v in doc.xpath(path, namespaces={"xsi": XSI})]


@pytest.fixture
def case(db):
    return make_case()


def test_a_complete_case_exports_as_a_schema_valid_batch(case):
    released = export.release(SafetyCase.objects.filter(pk=case.pk))
    assert schema.validate(released.xml) == []
    assert released.message_id.startswith("PHARMACRM-")
    # N.2.r.1 "is the same as C.1.1" (ICH E2B(R3) IG): the version is C.1.2, the transmission N.1.2
    assert released.report_ids == {"AE-2026-000001": "CN-PHARMACRM-AE-2026-000001"}
    doc = plain(released.xml)
    assert at(doc, "N.1.2") == [released.message_id]
    assert at(doc, "N.2.r.1") == at(doc, "C.1.1") == ["CN-PHARMACRM-AE-2026-000001"]


def test_every_value_of_the_case_sits_at_its_e2b_element(case):
    doc = plain(export.build([case], message_id="B-1", now=RECEIVED + dt.timedelta(days=4)))
    assert at(doc, "C.1.1") == ["CN-PHARMACRM-AE-2026-000001"]
    assert at(doc, "C.1.3") == ["1"]
    assert at(doc, "C.1.7") == ["true"]  # a hospitalisation makes the case serious
    assert doc.xpath("//investigationEvent/effectiveTime/low/@value") == ["20260302"]  # C.1.4
    assert doc.xpath("//investigationEvent/availabilityTime/@value") == ["20260305"]  # C.1.5
    assert at(doc, "C.3.2") == ["PharmaCRM 演示药业有限公司"]
    assert at(doc, "C.2.r.4") == ["1"]
    assert at(doc, "D.1") == ["张某"]
    assert at(doc, "D.5") == ["2"]
    assert at(doc, "D.2.2a") == ["45"]
    assert at(doc, "E.i.1.1a", i=1) == ["全身皮疹"]
    assert at(doc, "E.i.2.1b", i=2) == ["10037087"]
    assert at(doc, "E.i.3.2c", i=1) == ["true"]
    assert at(doc, "E.i.3.2a", i=1) == []  # false is sent as "no information", as FDA's examples do
    assert at(doc, "E.i.7", i=2) == ["2"]
    assert at(doc, "G.k.2.2", k=1) == ["阿莫灵"]
    assert at(doc, "G.k.2.2", k=2) == ["对乙酰氨基酚片"]
    assert at(doc, "G.k.3.1", k=1) == ["国药准字H20000001"]
    assert at(doc, "G.k.4.r.7", k=1) == ["B240301"]
    assert at(doc, "H.1") == ["患者服用阿莫西林胶囊后出现全身皮疹伴瘙痒，停药后好转。"]
    assert at(doc, "H.4") == ["公司评价：可能相关"]
    dosage = doc.xpath("//organizer/component[1]/substanceAdministration/outboundRelationship2"
                       "[@typeCode='COMP']/substanceAdministration")[0]  # fmt: skip
    assert dosage.xpath("text/text()") == ["每日3次"]  # G.k.4.r.8
    assert dosage.xpath("doseQuantity/@value") == ["0.5"] and dosage.xpath("doseQuantity/@unit") == ["g"]
    assert dosage.xpath("routeCode/originalText/text()") == ["口服"]
    assert dosage.xpath("effectiveTime/low/@value") == ["20260227"]
    results = doc.xpath("//causalityAssessment[code/@code='39']/value/text()")
    assert sorted(set(results)) == ["可能", "很可能"]  # reporter and company, China's six-level terms
    assert set(doc.xpath("//causalityAssessment[code/@code='39']/methodCode/originalText/text()")) == {
        "China NMPA 6-level"
    }
    assert doc.xpath("//causalityAssessment[code/@code='20']/value/@code") == ["1", "2"]  # G.k.1
    assert doc.xpath("//observation[code/@code='31']/value/@code") == ["4", "4"]  # rechallenge not done


def test_chinese_text_survives_as_utf8(case):
    xml = export.build([case])
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "全身皮疹".encode() in xml and "北京协和医院".encode() in xml


def test_a_batch_has_one_message_per_case(db):
    cases = [make_case(f"AE-2026-{n:06d}") for n in range(1, 4)]
    CaseVersion.objects.create(case=cases[1], sequence=1, received_at=RECEIVED + dt.timedelta(days=5))
    released = export.release(SafetyCase.objects.order_by("number"))
    doc = plain(released.xml)
    assert len(doc.findall("PORR_IN049016UV")) == 3
    assert [at(doc, "C.1.1", r=r)[0] for r in (1, 2, 3)] == [
        f"CN-PHARMACRM-AE-2026-{n:06d}" for n in (1, 2, 3)
    ]
    assert released.report_ids["AE-2026-000002"] == "CN-PHARMACRM-AE-2026-000002"  # N.2.r.1 = C.1.1


def test_without_meddra_codes_a_regulatory_export_is_refused_but_a_partner_one_is_not(case):
    Reaction.objects.filter(case=case).update(meddra_version="", meddra_llt="")
    with pytest.raises(export.ExportRefused) as refused:
        export.release([SafetyCase.objects.get(pk=case.pk)], purpose="regulatory")
    fields = {(p.element, p.field) for p in refused.value.problems}
    assert fields == {
        ("E.i.2.1a", "reactions[0].meddra_version"), ("E.i.2.1b", "reactions[0].meddra_llt"),
        ("E.i.2.1a", "reactions[1].meddra_version"), ("E.i.2.1b", "reactions[1].meddra_llt"),
    }  # fmt: skip
    assert all(p.case == "AE-2026-000001" and "MedDRA" in p.message for p in refused.value.problems)

    released = export.release([SafetyCase.objects.get(pk=case.pk)], purpose="partner")
    doc = plain(released.xml)
    assert at(doc, "E.i.1.1a", i=1) == ["全身皮疹"]  # the reporter's words, uncoded
    assert at(doc, "E.i.2.1b", i=1) == []


def test_a_value_longer_than_its_element_allows_is_reported_with_the_element(case):
    Drug.objects.filter(case=case, position=0).update(manufacturer="很长的公司名称" * 10)  # 70 characters
    problems = rules.check(SafetyCase.objects.get(pk=case.pk), "regulatory")
    assert [(p.element, p.field) for p in problems] == [("G.k.3.3", "drugs[0].manufacturer")]
    assert "60" in problems[0].message and "70" in problems[0].message


def test_non_numeric_doses_and_unknown_codes_are_refused(case):
    Drug.objects.filter(case=case, position=0).update(dose="半片", dose_unit="")
    SafetyCase.objects.filter(pk=case.pk).update(patient_weight_kg="约60")
    problems = rules.check(SafetyCase.objects.get(pk=case.pk), "partner")
    assert {(p.element, p.field) for p in problems} == {
        ("G.k.4.r.1a", "drugs[0].dose"), ("G.k.4.r.1b", "drugs[0].dose_unit"), ("D.3", "patient_weight_kg"),
    }  # fmt: skip


def test_numbers_typed_in_full_width_are_saved_as_numbers_and_the_case_exports(users):
    """The officer's input method was in full-width mode: age ４５, weight ６０．５, dose ２. The case saved, and its
    export was refused with "line 2: '４５' is not a valid value of the union type real" — no field named, nothing
    on the case page looked wrong, the report could not go out."""
    from pharmacrm.safety import services

    from .conftest import COMPLETE

    case = services.create_case(users["pv"], {
        **COMPLETE, "patient_age": "４５", "patient_weight_kg": "６０．５", "patient_height_cm": "１６２",
        "drugs": [{**COMPLETE["drugs"][0], "dose": "０．５"}],
    })  # fmt: skip
    case = SafetyCase.objects.get(pk=case.pk)
    assert (case.patient_age, case.patient_weight_kg, case.patient_height_cm) == ("45", "60.5", "162")
    assert case.drugs.get().dose == "0.5"
    doc = plain(export.release([case], purpose="partner").xml)
    assert at(doc, "D.2.2a") == ["45"] and doc.xpath("//doseQuantity/@value") == ["0.5"]

    # one stored so before: the export names the field to correct, not a line of the XML
    SafetyCase.objects.filter(pk=case.pk).update(patient_age="４５")
    problems = rules.check(SafetyCase.objects.get(pk=case.pk), "partner")
    assert [(p.element, p.field) for p in problems] == [("D.2.2a", "patient_age")]


def test_a_country_typed_in_full_width_is_saved_as_its_code_and_the_case_exports(users):
    """ＣＮ from an input method in full-width mode passed as 'two letters' and was saved so: the export was then
    refused, E.i.9 and C.2.r.3 'not a code', for a country the officer had entered correctly."""
    from pharmacrm.safety import services

    from .conftest import COMPLETE

    case = services.create_case(users["pv"], {**COMPLETE, "country": "ｃｎ", "reporter_country": "ＣＮ"})
    case = SafetyCase.objects.get(pk=case.pk)
    assert (case.country, case.reporter_country) == ("CN", "CN")
    assert rules.check(case, "partner") == []


def test_a_case_without_the_four_minimum_criteria_is_refused_with_what_is_missing(db):
    case = SafetyCase.objects.create(number="AE-2026-000009", kind="adverse_reaction", received_at=RECEIVED,
                                     latest_received_at=RECEIVED, narrative="电话反映用药后不适")  # fmt: skip
    with pytest.raises(export.ExportRefused) as refused:
        export.release([case], purpose="partner")
    places = {(p.element, p.field) for p in refused.value.problems}
    assert {("D.1", "patient_name"), ("C.2.r", "reporter_name"), ("G.k.1", "drugs"),
            ("E.i.1.1a", "reactions")} <= places  # fmt: skip
    assert "AE-2026-000009" in str(refused.value.problems[0])


def test_required_elements_are_listed_and_nothing_is_released(db):
    good = make_case("AE-2026-000001")
    bad = make_case("AE-2026-000002", narrative="")
    Reaction.objects.filter(case=bad, position=1).update(outcome="")
    with pytest.raises(export.ExportRefused) as refused:
        export.release([good, bad])
    assert {(p.case, p.element, p.field) for p in refused.value.problems} == {
        ("AE-2026-000002", "H.1", "narrative"), ("AE-2026-000002", "E.i.7", "reactions[1].outcome"),
    }  # fmt: skip
    assert refused.value.message_dict["cases"]  # a ValidationError the API can answer with


def test_additional_documents_and_a_sender_case_id_are_exported(case, settings):
    settings.SAFETY_SENDER_ORG_CODE = "DEMO"
    CaseFile.objects.create(case=case, file="safety/x.pdf", name="病历.pdf", content_type="application/pdf",
                            size=10)  # fmt: skip
    doc = plain(export.build([case]))
    assert at(doc, "C.1.6.1") == ["true"]
    assert at(doc, "C.1.1") == ["CN-DEMO-AE-2026-000001"]
    SafetyCase.objects.filter(pk=case.pk).update(sender_case_id="US-APHARMA-8744554B", worldwide_id="US-X-1",
                                                  country="US")  # fmt: skip
    doc = plain(export.build(SafetyCase.objects.filter(pk=case.pk)))
    assert at(doc, "C.1.1") == ["US-APHARMA-8744554B"]
    assert at(doc, "C.1.8.1") == ["US-X-1"]
    assert at(doc, "E.i.9", i=1) == ["US"]


def test_building_many_cases_reads_the_database_a_fixed_number_of_times(db, django_assert_max_num_queries):
    for n in range(1, 6):
        make_case(f"AE-2026-{n:06d}")
    with django_assert_max_num_queries(6):  # cases, drugs (+ products), reactions, versions, files
        xml = export.build(SafetyCase.objects.all())
    assert schema.validate(xml) == []


def test_the_rule_table_comes_from_the_fda_csv():
    table = rules.elements()
    assert table["H.1"].max_length == 100000 and table["H.1"].required
    assert table["D.1"].null_flavors >= {"MSK", "UNK"}
    assert table["E.i.7"].codes == {"0", "1", "2", "3", "4", "5"}
    assert table["G.k.3.3"].max_length == 60


def test_export_time_stamps_are_hl7_with_the_china_offset(case):
    now = timezone.make_aware(dt.datetime(2026, 3, 6, 14, 5, 9), dt.UTC)
    doc = plain(export.build([case], now=now))
    assert doc.xpath("/MCCI_IN200100UV01/creationTime/@value") == ["20260306220509+0800"]


def test_a_case_imported_from_the_usa_with_sparse_fields_still_validates(db):
    case = SafetyCase.objects.create(
        number="AE-2026-000010", kind="adverse_reaction", received_at=RECEIVED, latest_received_at=RECEIVED,
        country="US", reporter_country="US", sender_case_id="US-APHARMA-8744554B", worldwide_id="US-APHARMA-8744554B",
        patient_sex="1", patient_age="48", patient_age_unit="a", reporter_name="Roger Robertson",
        reporter_contact="rr@site.com", narrative="Case narrative", imported_from="Big Pharma Drug",
    )  # fmt: skip
    Reaction.objects.create(case=case, verbatim="deep vein thrombosis", language="eng", meddra_version="25.0",
                            meddra_llt="10051055", outcome="3", disability=True)  # fmt: skip
    Drug.objects.create(case=case, role="1", brand_name="Drug A", approval_number="NDA012345",
                        manufacturer="Big Pharma A Drug")  # fmt: skip
    released = export.release([case])
    doc = plain(released.xml)
    assert at(doc, "C.1.1") == ["US-APHARMA-8744554B"]
    assert at(doc, "D.1") == []  # no name: sent as "unknown"
    assert doc.xpath("//player1/name/@nullFlavor") == ["UNK"]
    assert at(doc, "C.2.r.4") == []  # qualification unknown
    assert doc.xpath("//approval/author/territorialAuthority/territory/code/@code") == ["US"]
    assert doc.xpath("//outboundRelationship/relatedInvestigation/subjectOf2/controlActEvent/author/assignedEntity/"
                     "telecom/@value") == ["mailto:rr@site.com"]  # fmt: skip
    assert released.report_ids == {"AE-2026-000010": "US-APHARMA-8744554B"}  # N.2.r.1 = C.1.1, the partner's id
