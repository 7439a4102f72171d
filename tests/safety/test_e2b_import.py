"""Import of incoming ICSRs (E2B(R3) batches from partners) and of acknowledgements: every FDA example
instance imports, its re-export validates and keeps what matters, a bad file writes nothing, a re-import
duplicates nothing, and an ACK is recorded on the submission it answers."""

from __future__ import annotations

import copy
import datetime as dt
import zoneinfo
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from lxml import etree

from pharmacrm.safety.choices import AckStatus, CaseStatus
from pharmacrm.safety.e2b import ack, export, importer, schema
from pharmacrm.safety.models import CaseVersion, Drug, Reaction, SafetyCase, Submission


@pytest.fixture(autouse=True)
def _english():
    """The assertions name the English texts the importer writes (notes in the history, warnings);
    a Chinese deployment writes them in Chinese."""
    from django.utils import translation

    with translation.override("en"):
        yield

DATA = Path(__file__).parent / "data" / "fda-examples"
EXAMPLES = sorted(p.name for p in DATA.glob("*.xml"))
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NS = {"h": schema.HL7}
SERIOUSNESS = ("death", "life_threatening", "hospitalisation", "disability", "congenital", "other_important")


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_there_are_ten_fda_examples():
    assert len(EXAMPLES) == 10


def _tree(name: str):
    return etree.fromstring(read(name))


def _edit(name: str, change) -> bytes:
    """An FDA example changed by `change(root)`."""
    root = _tree(name)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _one(root, path: str):
    return root.xpath(path, namespaces=NS)[0]


# --- parse: what an FDA instance says ends up in the case dict ----------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_fda_example_parses_into_a_case(name):
    cases = importer.parse(read(name), source_name=name)

    assert len(cases) == 1
    case = cases[0]
    assert case["worldwide_id"].startswith("US-APHARMA-")
    assert case["sender_case_id"]
    assert case["received_at"].tzinfo is not None
    assert case["narrative"].startswith("Case Narrative")
    assert case["reactions"] and all(r["verbatim"] and r["meddra_llt"] for r in case["reactions"])
    assert any(d["role"] == "1" and d["brand_name"] for d in case["drugs"])
    assert case["imported_from"].endswith(name)


def test_scenario_1_maps_each_element_to_its_field():
    case = importer.parse(read("FAERS2022Scenario1.xml"), source_name="FAERS2022Scenario1.xml")[0]

    assert case["sender_case_id"] == case["worldwide_id"] == "US-APHARMA-8744554B"
    # C.1.4 20220614101010-0500 is 23:10:10 the same day in Shanghai
    assert case["received_at"] == dt.datetime(2022, 6, 14, 23, 10, 10, tzinfo=SHANGHAI)
    assert case["received_at"].utcoffset() == dt.timedelta(hours=8)
    assert case["kind"] == "adverse_reaction"
    assert case["report_type"] == "1"
    assert case["country"] == "US"
    assert case["imported_from"] == "Big Pharma Drug — FAERS2022Scenario1.xml"
    assert (case["patient_name"], case["patient_sex"]) == ("JD", "1")
    assert (case["patient_age"], case["patient_age_unit"]) == ("48", "a")
    assert case["patient_birth_date"] == dt.date(2001, 6, 15)
    assert case["patient_history"] == "None\nPrevious drug: CureAll"
    assert case["reporter_name"] == "Roger Robertson"
    assert case["reporter_contact"] == "6102227777; alladdresses@site.com"
    assert (case["reporter_qualification"], case["reporter_country"]) == ("1", "US")
    assert case["reporter_comment"] == "Repoeter Comments"  # sic, as FDA wrote it
    assert case["sender_comment"] == "Sender Comments"
    assert case["expectedness"] == "unknown"

    first, second = case["reactions"]
    assert first["verbatim"] == "THROMBOSE VEINEUSE PROFONDE"  # E.i.1.2: no native-language term given
    assert (first["meddra_version"], first["meddra_llt"]) == ("25.0", "10027940")
    assert first["onset_date"] == dt.date(2014, 10, 10)
    assert first["outcome"] == "3"
    assert [k for k in SERIOUSNESS if first[k]] == ["disability", "other_important"]
    assert [k for k in SERIOUSNESS if second[k]] == ["other_important"]
    assert second["outcome"] == "1"

    drug_a, drug_b, drug_c = case["drugs"]
    assert drug_a == {
        "role": "1", "brand_name": "Drug A", "generic_name": "Ingredient A", "approval_number": "NDA012345",
        "manufacturer": "Big Pharma A Drug", "dosage_form": "", "batch": "UNKNOWN", "dose": "", "dose_unit": "",
        "route": "Oral", "frequency": "", "start_date": None, "stop_date": None, "indication": "Embolism venous",
        "indication_meddra": "", "action_taken": "0", "rechallenge": "", "start_precision": "day", "stop_precision": "day",
    }  # fmt: skip
    assert (drug_b["role"], drug_b["brand_name"]) == ("1", "Drug B")
    assert (drug_c["role"], drug_c["brand_name"], drug_c["manufacturer"]) == (
        "2",
        "Drug C",
        "Big Pharma C Drug",
    )
    assert case["warnings"] == []


def test_the_mega_instance_keeps_dosage_history_pregnancy_and_the_native_term():
    case = importer.parse(read("FAERS2022Scenario6.xml"))[0]

    assert case["kind"] == "misuse"  # G.k.10.r = 9 (abuse) on the suspect drug
    assert case["country"] == "EU"
    assert (case["patient_weight_kg"], case["patient_height_cm"]) == ("48.2", "152")
    assert case["patient_record_number"] == "3333444A32"  # D.1.1.3 hospital record number
    assert "Last menstrual period: 2009-01-01" in case["patient_pregnancy"]
    assert "MedDRA 10061122" in case["patient_history"]
    assert case["reporter_institution"] == "Pharma Company, Reporting"
    reaction = case["reactions"][0]
    assert (reaction["verbatim"], reaction["language"]) == ("consciência alterada", "por")
    assert reaction["death"] and reaction["hospitalisation"]
    assert reaction["end_date"] == dt.date(2009, 1, 2)
    drug = case["drugs"][0]
    assert (drug["dose"], drug["dose_unit"], drug["frequency"]) == ("10", "10.a", "10 d")
    assert (drug["batch"], drug["route"], drug["dosage_form"]) == ("4577BN2", "Free text route content",
                                                                    "Big, round and colored white")  # fmt: skip
    assert drug["generic_name"] == "TERBINAFINE HYDROCHLORIDE, ARGEMONE MEXICANA SEED OIL"
    assert (drug["indication_meddra"], drug["action_taken"], drug["rechallenge"]) == ("10028813", "2", "yes")
    assert (drug["start_date"], drug["stop_date"]) == (dt.date(2009, 1, 1), dt.date(2009, 1, 1))
    assert case["drugs"][1]["role"] == "3"
    # the second reaction has only a MedDRA code: said, not hidden
    assert case["reactions"][1]["verbatim"] == "MedDRA 10024381"
    assert any("E.2" in w and "missing" in w for w in case["warnings"])


def test_a_value_longer_than_the_field_is_shortened_with_a_warning():
    def long_batch(root):
        _one(root, "//h:kindOfProduct/h:asManufacturedProduct//h:id[@extension='NDA012345']").set(
            "extension", "N" * 60
        )

    case = importer.parse(_edit("FAERS2022Scenario1.xml", long_batch))[0]

    assert case["drugs"][0]["approval_number"] == "N" * 40
    assert any("G.1.3.1" in w and "40" in w for w in case["warnings"])


# --- refused files ------------------------------------------------------------------------------------------


def test_broken_xml_is_refused_naming_the_line(db):
    with pytest.raises(ValidationError) as refused:
        importer.parse(b"<?xml version='1.0'?>\n<MCCI_IN200100UV01>\n<id></MCCI_IN200100UV01>")

    assert "line 3" in refused.value.message_dict["file"][0]


def test_a_file_that_breaks_the_schema_is_refused_with_the_schema_errors(users):
    def break_it(root):
        _one(root, "h:creationTime").tag = f"{{{schema.HL7}}}bogus"

    with pytest.raises(ValidationError) as refused:
        importer.import_file(users["pv"], _edit("FAERS2022Scenario1.xml", break_it), source_name="x.xml")

    errors = refused.value.message_dict["file"]
    assert "MCCI_IN200100UV01" in errors[0]
    assert any(e.startswith("Line ") and "bogus" in e for e in errors[1:])
    assert not SafetyCase.objects.exists()


def test_an_acknowledgement_is_not_an_icsr_batch(db):
    with pytest.raises(ValidationError):
        importer.parse(read("R3ack-positive.ack"))


def test_an_oversized_file_is_refused_before_parsing(users):
    with pytest.raises(ValidationError) as refused:
        importer.import_file(users["pv"], b" " * (schema.max_bytes() + 1), source_name="big.xml")

    assert "MB" in refused.value.message_dict["file"][0]
    assert not SafetyCase.objects.exists()


def test_only_pharmacovigilance_imports(users):
    with pytest.raises(PermissionDenied):
        importer.import_file(users["agent"], read("FAERS2022Scenario1.xml"), source_name="s1.xml")
    assert not SafetyCase.objects.exists()


def test_a_batch_imports_whole_or_not_at_all(users):
    """The second report has a reaction starting in the future: the first is not kept either."""

    def add_bad_second_report(root):
        message = _one(root, "h:PORR_IN049016UV")
        bad = copy.deepcopy(message)
        _one(bad, ".//h:investigationEvent/h:id[@root='2.16.840.1.113883.3.989.2.1.3.2']").set(
            "extension", "US-X-2"
        )
        _one(bad, ".//h:observation[h:code/@code='29']/h:effectiveTime/h:low").set("value", "20990101")
        message.addnext(bad)

    with pytest.raises(ValidationError) as refused:
        importer.import_file(
            users["pv"], _edit("FAERS2022Scenario1.xml", add_bad_second_report), source_name="b.xml"
        )

    assert any(m.startswith("US-X-2: reactions[0].onset_date") for m in refused.value.message_dict["file"])
    assert not SafetyCase.objects.exists()


# --- import into cases ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_fda_example_imports_as_a_case(users, name):
    parsed = importer.parse(read(name), source_name=name)[0]

    [case] = importer.import_file(users["pv"], read(name), source_name=name)

    case = SafetyCase.objects.get(pk=case.pk)
    assert case.worldwide_id == parsed["worldwide_id"]
    assert case.received_at == parsed["received_at"]
    assert case.imported_from.endswith(name)
    assert (case.patient_sex, case.patient_age) == (parsed["patient_sex"], parsed["patient_age"])
    assert case.reporter_name == parsed["reporter_name"]
    assert case.narrative == parsed["narrative"]
    assert [r.verbatim for r in case.reactions.all()] == [r["verbatim"] for r in parsed["reactions"]]
    assert case.serious == any(r[k] for r in parsed["reactions"] for k in SERIOUSNESS)
    assert [d.brand_name for d in case.drugs.all()] == [d["brand_name"] for d in parsed["drugs"]]
    assert case.versions.count() == 1


def test_importing_the_same_file_again_changes_nothing(users):
    data = read("FAERS2022Scenario1.xml")
    [first] = importer.import_file(users["pv"], data, source_name="s1.xml")
    version = SafetyCase.objects.get(pk=first.pk).version

    [again] = importer.import_file(users["pv"], data, source_name="s1-again.xml")

    assert again.pk == first.pk
    assert SafetyCase.objects.count() == 1
    assert CaseVersion.objects.count() == 1
    assert Drug.objects.count() == 3 and Reaction.objects.count() == 2
    assert SafetyCase.objects.get(pk=first.pk).version == version


def test_new_information_about_a_known_case_becomes_a_follow_up(users):
    importer.import_file(users["pv"], read("FAERS2022Scenario1.xml"), source_name="s1.xml")

    def newer(root):
        _one(root, "//h:investigationEvent/h:availabilityTime").set("value", "20220701090000+0800")
        _one(root, "//h:investigationEvent/h:text").text = "The patient recovered."

    [case] = importer.import_file(
        users["pv"], _edit("FAERS2022Scenario1.xml", newer), source_name="s1-fu.xml"
    )

    assert SafetyCase.objects.count() == 1
    follow_up = case.versions.get(sequence=1)
    assert follow_up.received_at == dt.datetime(2022, 7, 1, 9, 0, tzinfo=SHANGHAI)
    assert "narrative" in follow_up.changes
    assert "s1-fu.xml" in follow_up.summary
    assert case.narrative == "The patient recovered."
    assert case.latest_received_at == follow_up.received_at


def test_an_older_report_about_a_known_case_is_not_applied(users):
    def newer(root):
        _one(root, "//h:investigationEvent/h:availabilityTime").set("value", "20220701090000+0800")

    importer.import_file(users["pv"], _edit("FAERS2022Scenario1.xml", newer), source_name="s1-new.xml")

    [case] = importer.import_file(users["pv"], read("FAERS2022Scenario1.xml"), source_name="s1-old.xml")

    assert case.versions.count() == 1
    assert any("older" in w and "2022-07-01" in w for w in case.import_warnings)


def test_an_age_in_a_unit_the_case_cannot_hold_is_left_out_not_read_as_years():
    def minutes(root):
        _one(root, "//h:primaryRole/h:subjectOf2/h:observation[h:code/@code='3']/h:value").set("unit", "min")

    case = importer.parse(_edit("FAERS2022Scenario1.xml", minutes))[0]

    assert (case["patient_age"], case["patient_age_unit"]) == ("", "")
    assert any("D.2.2" in w and "48 min" in w for w in case["warnings"])


# --- the round trip: import, export, re-read -------------------------------------------------------------------


def _essentials(case: dict) -> dict:
    """What an import and its re-export must agree on."""
    return {
        "worldwide_id": case["worldwide_id"],
        "received_on": case["received_at"].date(),  # C.1.4 is a date; we send the day, in China time
        "reporter": (case["reporter_name"], case["reporter_qualification"], case["reporter_country"],
                     case["reporter_institution"], case["reporter_contact"].replace(" ", "")),
        "patient": (case["patient_name"], case["patient_sex"], case["patient_age"], case["patient_age_unit"],
                    case["patient_birth_date"]),
        "reactions": [(r["verbatim"], r["meddra_version"], r["meddra_llt"], r["outcome"], r["onset_date"],
                       [k for k in SERIOUSNESS if r[k]]) for r in case["reactions"]],
        "suspect_drugs": [(d["brand_name"], d["approval_number"], d["manufacturer"], d["batch"], d["dose"], d["frequency"],
                           d["route"], d["indication"], d["action_taken"])
                          for d in case["drugs"] if d["role"] in ("1", "3")],
        "narrative": case["narrative"],
    }  # fmt: skip


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_re_export_of_an_imported_case_validates_and_keeps_the_case(users, name):
    original = importer.parse(read(name), source_name=name)[0]
    [case] = importer.import_file(users["pv"], read(name), source_name=name)

    xml = export.build([case])

    assert schema.validate(xml, schema.BATCH) == []
    again = importer.parse(xml)[0]
    assert again["sender_case_id"]  # our own C.1.1 now; the worldwide id (C.1.8.1) stays the partner's
    assert _essentials(again) == _essentials(original)


# --- acknowledgements -----------------------------------------------------------------------------------------


def _submitted(user, name: str, batch_id: str) -> Submission:
    [case] = importer.import_file(user, read(name), source_name=name)
    SafetyCase.objects.filter(pk=case.pk).update(status=CaseStatus.SUBMITTED)
    return Submission.objects.create(
        case=case, case_version=case.versions.get(sequence=0), jurisdiction="US", channel="fda_esg",
        submitted_at=dt.datetime(2022, 8, 15, 9, 0, tzinfo=SHANGHAI), submitted_by=user, message_id=batch_id,
    )  # fmt: skip


def test_the_ack_examples_are_read_as_they_are_written():
    positive = ack.parse_ack(read("R3ack-positive.ack"))
    negative = ack.parse_ack(read("R3ack-negative.ack"))

    assert (positive.message_id, positive.code, positive.accepted) == ("33439257", "AA", True)
    assert positive.batch_message_id == "FAERS2022Scenario1-4069-a2dd-08002b30309d"
    assert positive.at == dt.datetime(2022, 8, 12, 1, 50, 30, tzinfo=SHANGHAI)  # 13:50:30 -04:00
    assert [(r.code, r.accepted) for r in positive.reports] == [("CA", True)]
    assert (negative.code, negative.accepted) == ("AE", False)
    [report] = negative.reports
    assert (report.message_id, report.code, report.accepted) == ("US-APHARMA-7644554", "CR", False)
    assert "Patient Ethnicity Code (FDA.D.12) must be provided" in report.errors


def test_a_positive_ack_marks_the_submission_accepted(users):
    submission = _submitted(
        users["pv"], "FAERS2022Scenario1.xml", "FAERS2022Scenario1-4069-a2dd-08002b30309d"
    )

    [acknowledged] = ack.import_ack(users["pv"], read("R3ack-positive.ack"))

    assert acknowledged.pk == submission.pk
    assert acknowledged.ack_status == AckStatus.ACCEPTED
    assert acknowledged.ack_message_id == "33439257"
    assert acknowledged.ack_at == dt.datetime(
        2022, 8, 11, 13, 50, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4))
    )
    assert acknowledged.case.status == CaseStatus.SUBMITTED


def test_a_negative_ack_reopens_the_case_with_the_errors(users):
    submission = _submitted(
        users["pv"], "FAERS2022Scenario2.xml", "FAERS2022Scenario2-4069-a2dd-08002b30309d"
    )

    [acknowledged] = ack.import_ack(users["pv"], read("R3ack-negative.ack"))

    assert acknowledged.pk == submission.pk
    assert acknowledged.ack_status == AckStatus.REJECTED
    assert (
        "Element value for SafetyCasePriority With Tag Id FDA.C.1.7.1 is Mandatory."
        in acknowledged.ack_errors
    )
    assert SafetyCase.objects.get(pk=submission.case_id).status == CaseStatus.ASSESSING


def test_the_same_ack_imported_twice_is_recorded_once(users):
    _submitted(users["pv"], "FAERS2022Scenario2.xml", "FAERS2022Scenario2-4069-a2dd-08002b30309d")
    ack.import_ack(users["pv"], read("R3ack-negative.ack"))
    case = SafetyCase.objects.get()
    version = case.version

    ack.import_ack(users["pv"], read("R3ack-negative.ack"))

    assert SafetyCase.objects.get().version == version


def test_each_report_of_a_batch_gets_its_own_answer(users):
    """Our batch held two cases; the regulator accepts one and rejects the other, naming them by the message
    id our export gave them (N.2.r.1 = case number and follow-up)."""
    batch = "PHARMACRM-20260101-ABC"
    good = _submitted(users["pv"], "FAERS2022Scenario1.xml", batch)
    bad = _submitted(users["pv"], "FAERS2022Scenario4.xml", batch)

    def answer_both(root):
        _one(root, "h:acknowledgement/h:targetBatch/h:id").set("extension", batch)
        report = _one(root, "h:MCCI_IN000002UV01")
        _one(report, "h:acknowledgement/h:targetMessage/h:id").set("extension", f"{good.case.number}-0")
        rejected = copy.deepcopy(report)
        _one(rejected, "h:acknowledgement").set("typeCode", "CR")
        _one(rejected, "h:acknowledgement/h:targetMessage/h:id").set("extension", f"{bad.case.number}-0")
        _one(
            rejected, "h:acknowledgement/h:acknowledgementDetail/h:text"
        ).text = "D.5 missing;C.1.7.1 missing"
        report.addnext(rejected)

    ack.import_ack(users["pv"], _edit("R3ack-positive.ack", answer_both))

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.ack_status == AckStatus.ACCEPTED
    assert (bad.ack_status, bad.ack_errors) == (AckStatus.REJECTED, ["D.5 missing", "C.1.7.1 missing"])
    assert SafetyCase.objects.get(pk=good.case_id).status == CaseStatus.SUBMITTED
    assert SafetyCase.objects.get(pk=bad.case_id).status == CaseStatus.ASSESSING


def test_an_ack_for_a_batch_we_never_sent_is_refused(users):
    with pytest.raises(ValidationError) as refused:
        ack.import_ack(users["pv"], read("R3ack-positive.ack"))

    assert "FAERS2022Scenario1-4069-a2dd-08002b30309d" in refused.value.message_dict["file"][0]


def test_an_icsr_batch_is_not_an_ack(users):
    with pytest.raises(ValidationError) as refused:
        ack.import_ack(users["pv"], read("FAERS2022Scenario1.xml"))

    assert "MCCI_IN200101UV01" in refused.value.message_dict["file"][0]
