"""Thirty-sixth session: every free-text field of a customer record follows the address's rule (session 35) on the
import, the web forms and the API (tests/api/test_qa_round36_text_lengths_api.py): at most its column's length,
counted as stored (runs of spaces collapsed), a longer value refused in the same words naming the field, never cut
— and no browser maxlength that cuts a paste without a word. An institution's phone takes no mobile extension, as a
person's mobile takes none."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from pharmacrm.customers import importer, normalise
from pharmacrm.customers.models import ImportJob, Institution, Person
from tests.customers.test_qa_round35_entry_paths import NO_EXTENSION, _csv, _errors, _input

# field → (limit, a value of exactly the limit, the zh-Hans message for one character more)
INSTITUTION_TEXT = {
    "name": (200, "东城区" + "社" * 197, "名称过长：最多 200 个字符（当前为 201 个）。"),
    "short_name": (60, "东城" + "社" * 58, "简称过长：最多 60 个字符（当前为 61 个）。"),
    "legal_representative": (50, "王" * 50, "法定代表人姓名过长：最多 50 个字符（当前为 51 个）。"),
}
PERSON_TEXT = {
    "name": (50, "欧阳" + "娜" * 48, "姓名过长：最多 50 个字符（当前为 51 个）。"),
    "title": (50, "主任医师" + "师" * 46, "职称过长：最多 50 个字符（当前为 51 个）。"),
}
INSTITUTION_HEADERS = {"name": "机构名称", "short_name": "简称", "legal_representative": "法定代表人"}
PERSON_HEADERS = {"name": "姓名", "title": "职称"}
# typed with the runs of spaces a paste from a web page brings: 53 characters as typed, 50 as stored
SPACED_TITLE = "主任医师  " + "师" * 22 + "   " + "师" * 22


def test_sanity_of_the_values():
    for limit, value, _message in (*INSTITUTION_TEXT.values(), *PERSON_TEXT.values()):
        assert len(value) == limit
    assert len(SPACED_TITLE) > 50 and len(normalise.clean_text(SPACED_TITLE)) == 50


# --- the import ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["good", "all"])
@pytest.mark.parametrize("field", list(INSTITUTION_TEXT))
def test_the_import_refuses_an_institutions_text_over_its_length_in_the_forms_words(
    users, tmp_path, settings, mode, field
):
    """The import refused a 201-character name with "This value is too long (at most 200 characters)", words the
    forms and the API never used; the message now names the field, as theirs does. A value of the limit is taken."""
    settings.VAR_DIR = tmp_path
    limit, value, message = INSTITUTION_TEXT[field]
    header = INSTITUTION_HEADERS[field]
    first = {"name": "帅府园诊所"}
    columns = ["机构名称", "机构类型", "外部编号"] + ([header] if field != "name" else [])

    def row(text, ext):
        named = {**first, field: text}
        return [named["name"], "诊所", ext] + ([named[field]] if field != "name" else [])

    path = _csv(tmp_path, "institutions.csv", [columns, row(value + "所", "I-1"), row(value, "I-2")])
    job = importer.import_file(path, "institutions", users["kam"], mode=mode)
    assert _errors(job) == [(2, header, message)]
    assert not Institution.objects.filter(external_id="I-1").exists()
    if mode == "good":
        assert (job.status, job.created_count) == (ImportJob.Status.DONE, 1)
        assert getattr(Institution.objects.get(external_id="I-2"), field) == value
    else:
        assert (job.status, job.created_count) == (ImportJob.Status.REJECTED, 0)
        assert not Institution.objects.filter(external_id="I-2").exists()


@pytest.mark.parametrize("mode", ["good", "all"])
@pytest.mark.parametrize("field", list(PERSON_TEXT))
def test_the_import_refuses_a_persons_name_or_title_over_50_characters_in_the_forms_words(
    users, xiehe, tmp_path, settings, mode, field
):
    settings.VAR_DIR = tmp_path
    limit, value, message = PERSON_TEXT[field]
    header = PERSON_HEADERS[field]
    rows = [["姓名", "职称", "所属机构", "外部编号"]]
    for ext, text in (("P-1", value + "师"), ("P-2", value)):
        person = {"name": "李娜", "title": "主治医师", field: text}
        rows.append([person["name"], person["title"], "北京协和医院", ext])
    job = importer.import_file(_csv(tmp_path, "people.csv", rows), "people", users["kam"], mode=mode)
    assert _errors(job) == [(2, header, message)]
    assert not Person.objects.filter(external_id="P-1").exists()
    if mode == "good":
        assert getattr(Person.objects.get(external_id="P-2"), field) == value
    else:
        assert job.status == ImportJob.Status.REJECTED and not Person.objects.filter(external_id="P-2").exists()


def test_the_import_counts_a_title_as_stored_and_refuses_a_long_external_id_naming_it(users, xiehe, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "people.csv", [
        ["姓名", "职称", "所属机构", "外部编号"],
        ["李娜", SPACED_TITLE, "北京协和医院", "P-1"],
        ["王芳", "主治医师", "北京协和医院", "P" * 65],
    ])  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert _errors(job) == [(3, "外部编号", "外部编号过长：最多 64 个字符（当前为 65 个）。")]
    assert Person.objects.get(external_id="P-1").title == normalise.clean_text(SPACED_TITLE)
    assert not Person.objects.filter(name="王芳").exists()


# --- the web forms ------------------------------------------------------------------------------------------------

INSTITUTION_FORM = {"name": "东城社区卫生服务中心", "kind": "community", "tier": "new", "stage": "potential"}


@pytest.mark.parametrize("field", list(INSTITUTION_TEXT))
def test_the_institution_form_refuses_a_text_over_its_length_naming_the_field_and_never_cuts_it(
    client_for, field
):
    """The form's inputs carried maxlength (the browser cut a longer paste without a word) and a value sent longer
    got Django's words, which name no field; the import, the form and the API now say the same, naming it."""
    client = client_for("kam")
    url = reverse("customers:institution-create")
    assert "maxlength" not in _input(client.get(url).content.decode(), field)
    limit, value, message = INSTITUTION_TEXT[field]
    page = client.post(url, {**INSTITUTION_FORM, field: value + "所"})
    assert page.status_code == 200
    assert page.context["form"].errors[field] == [message]
    assert message in page.content.decode()
    assert not Institution.objects.filter(**{field: value + "所"}).exists()
    assert not Institution.objects.exists()
    # said in the same round as another field's error
    page = client.post(url, {**INSTITUTION_FORM, field: value + "所", "phone": "12345"})
    assert page.context["form"].errors[field] == [message] and "phone" in page.context["form"].errors
    # the limit itself is taken
    assert client.post(url, {**INSTITUTION_FORM, field: value}).status_code == 302
    assert getattr(Institution.objects.get(), field) == value


def test_the_institution_edit_form_refuses_a_name_over_200_and_keeps_the_stored_one(client_for, xiehe):
    client = client_for("kam")
    url = reverse("customers:institution-edit", args=[xiehe.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    assert "maxlength" not in _input(client.get(url).content.decode(), "name")
    limit, value, message = INSTITUTION_TEXT["name"]
    page = client.post(url, {**data, "name": value + "院"})
    assert page.status_code == 200 and page.context["form"].errors["name"] == [message]
    assert Institution.objects.get(pk=xiehe.pk).name == "北京协和医院"
    # a name pasted with runs of spaces is counted as stored, as the import counts it
    spaced = "北京协和医院  " + "院" * 194
    assert len(spaced) == 202 and len(normalise.clean_text(spaced)) == 201
    page = client.post(url, {**data, "name": spaced})
    assert page.context["form"].errors["name"] == [message]
    answer = client.post(url, {**data, "name": "北京协和医院  " + "院" * 193})
    assert answer.status_code == 302, answer.context["form"].errors
    assert Institution.objects.get(pk=xiehe.pk).name == "北京协和医院 " + "院" * 193


PERSON_FORM = {"name": "李娜", "role": "doctor", "tier": "new", "stage": "potential"}


@pytest.mark.parametrize("field", list(PERSON_TEXT))
def test_the_person_form_refuses_a_name_or_title_over_50_naming_the_field_and_never_cuts_it(
    client_for, xiehe, field
):
    client = client_for("kam")
    url = reverse("customers:person-create")
    assert "maxlength" not in _input(client.get(url).content.decode(), field)
    limit, value, message = PERSON_TEXT[field]
    person = {**PERSON_FORM, "institution": xiehe.pk}
    page = client.post(url, {**person, field: value + "师", "email": "not an address"})
    assert page.status_code == 200
    assert page.context["form"].errors[field] == [message] and "email" in page.context["form"].errors
    page = client.post(url, {**person, field: value + "师"})
    assert page.context["form"].errors[field] == [message]
    assert message in page.content.decode()
    assert not Person.objects.filter(institution=xiehe).exclude(name="张伟").exists()
    assert client.post(url, {**person, field: value}).status_code == 302
    assert getattr(Person.objects.exclude(name="张伟").get(institution=xiehe), field) == value


def test_the_person_edit_form_stores_a_title_as_the_import_does_and_refuses_a_longer_one(client_for, xiehe):
    """A title was stored as typed by the form, spaces and all, and counted so, while the import collapsed its
    spaces: a title pasted from a web page fit in one and not in the other."""
    zhang = Person.objects.get(name="张伟")
    client = client_for("kam")
    url = reverse("customers:person-edit", args=[zhang.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    limit, value, message = PERSON_TEXT["title"]
    page = client.post(url, {**data, "title": value + "师"})
    assert page.status_code == 200 and page.context["form"].errors["title"] == [message]
    assert Person.objects.get(pk=zhang.pk).title == zhang.title
    answer = client.post(url, {**data, "title": SPACED_TITLE})
    assert answer.status_code == 302, answer.context["form"].errors
    assert Person.objects.get(pk=zhang.pk).title == normalise.clean_text(SPACED_TITLE)


# --- an institution's phone: a mobile takes no extension ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_import_refuses_an_institutions_mobile_with_an_extension_and_keeps_a_landlines(
    users, tmp_path, settings, mode
):
    """13800138000转123 in an institutions list's 电话 was imported as typed: a number nobody can dial, which the
    person import refuses. Now refused the same way; a landline's extension is kept."""
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [
        ["机构名称", "机构类型", "电话", "外部编号"],
        ["帅府园诊所", "诊所", "13800138000转123", "I-1"],
        ["东单药房", "药店", "13800138001-123", "I-2"],
        ["东城社区卫生服务中心", "社区卫生服务中心", "010-12345678转123", "I-3"],
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"], mode=mode)
    assert _errors(job) == [(2, "电话", NO_EXTENSION), (3, "电话", NO_EXTENSION)]
    assert not Institution.objects.filter(external_id__in=["I-1", "I-2"]).exists()
    if mode == "good":
        assert Institution.objects.get(external_id="I-3").phone == "010-12345678转123"
    else:
        assert job.status == ImportJob.Status.REJECTED and not Institution.objects.exists()


def test_the_institution_form_refuses_a_mobile_with_an_extension_while_typed_and_when_saved(client_for, xiehe):
    client = client_for("kam")
    url = reverse("customers:institution-create")
    typed = client.post(url, {"_validate": "phone", "phone": "13800138000 ext 123"}, HTTP_HX_REQUEST="true")
    assert NO_EXTENSION in typed.content.decode()
    page = client.post(url, {**INSTITUTION_FORM, "phone": "13800138000转123"})
    assert page.status_code == 200
    assert page.context["form"].errors["phone"] == [NO_EXTENSION]
    assert not Institution.objects.filter(name=INSTITUTION_FORM["name"]).exists()
    # an edit too; a landline keeps its extension
    url = reverse("customers:institution-edit", args=[xiehe.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    page = client.post(url, {**data, "phone": "13800138000-123"})
    assert page.status_code == 200 and page.context["form"].errors["phone"] == [NO_EXTENSION]
    assert client.post(url, {**data, "phone": "010-69156114转8001"}).status_code == 302
    assert Institution.objects.get(pk=xiehe.pk).phone == "010-69156114转8001"


def test_the_templates_instructions_give_the_text_limits_and_the_institution_phone_rule(client_for):
    import io

    from openpyxl import load_workbook

    client = client_for("kam")
    notes = {}
    for target in ("institutions", "people"):
        response = client.get(reverse("customers:import-template", args=[target, "xlsx"]))
        sheet = load_workbook(io.BytesIO(response.content)).worksheets[1]
        notes[target] = {row[0].value: row[2].value for row in sheet.iter_rows(min_row=2)}
    assert notes["institutions"]["机构名称"] == "最多 200 个字符。"
    assert notes["institutions"]["简称"] == "最多 60 个字符。"
    assert notes["institutions"]["法定代表人"] == "最多 50 个字符。"
    assert "不带分机号" in notes["institutions"]["电话"] and "010-12345678转123" in notes["institutions"]["电话"]
    assert notes["people"]["姓名"] == notes["people"]["职称"] == "最多 50 个字符。"
    assert "最多 64 个字符" in notes["people"]["外部编号"]
    assert notes["people"]["标签"] == notes["institutions"]["标签"] == "多个标签用逗号分隔，每个最多 50 个字符。"


# --- a tag: at most 50 characters as stored, refused rather than cut ------------------------------------------------

LONG_TAG = "心血管" + "药" * 48  # 51 characters: one more than a tag holds
TAG_MESSAGE = "标签过长：最多 50 个字符（当前为 51 个）。"


def test_the_form_and_the_import_refuse_a_tag_over_50_characters_and_never_cut_it(client_for, users, tmp_path, settings):
    """A tag of 51 characters was cut to 50 without a word by the form and the import (and became a tag nobody typed),
    while the API refused it in DRF's words. The same limit and message now, on every path."""
    from pharmacrm.customers.models import Tag

    client = client_for("kam")
    url = reverse("customers:institution-create")
    page = client.post(url, {**INSTITUTION_FORM, "tags": f"KOL, {LONG_TAG}"})
    assert page.status_code == 200 and page.context["form"].errors["tags"] == [TAG_MESSAGE]
    assert not Institution.objects.exists() and not Tag.objects.exists()
    assert client.post(url, {**INSTITUTION_FORM, "tags": f"KOL, {LONG_TAG[:-1]}"}).status_code == 302
    assert sorted(Institution.objects.get().tags.values_list("name", flat=True)) == sorted(["KOL", LONG_TAG[:-1]])

    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [
        ["机构名称", "机构类型", "标签", "外部编号"], ["帅府园诊所", "诊所", f"重点, {LONG_TAG}", "I-1"],
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"], mode="good")
    assert _errors(job) == [(2, "标签", TAG_MESSAGE)]
    assert not Institution.objects.filter(external_id="I-1").exists()
    assert not Tag.objects.filter(name__startswith="心血管药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药药").exclude(name=LONG_TAG[:-1]).exists()


def test_phones_and_the_tag_and_specialty_lists_have_no_browser_limit_that_cuts_a_paste(client_for, xiehe):
    """The phone inputs carried maxlength="32", the tag and specialty lists maxlength="500": the browser cut a longer
    paste without a word — a list in the middle of a tag, a number in the middle of its digits (a landline with its
    extension and a note, cut, then refused or stored wrong). Nothing is cut now: a list of many short tags is taken
    whole, and a number too long for any phone is refused by the phone rules, in words naming the kind of number."""
    client = client_for("kam")
    institution = client.get(reverse("customers:institution-create")).content.decode()
    person = client.get(reverse("customers:person-create")).content.decode()
    for page, field in ((institution, "phone"), (institution, "tags"), (institution, "specialties"),
                        (person, "mobile"), (person, "landline"), (person, "tags")):  # fmt: skip
        assert "maxlength" not in _input(page, field), field
    tags = ",".join(f"重点随访{i:03d}" for i in range(70))  # 70 tags, 559 characters
    assert len(tags) > 500
    answer = client.post(reverse("customers:institution-create"), {**INSTITUTION_FORM, "tags": tags})
    assert answer.status_code == 302, answer.context["form"].errors
    assert Institution.objects.get(name=INSTITUTION_FORM["name"]).tags.count() == 70
    long_number = "010-12345678 转 1234，工作日 9:00–17:00 请找王主任办公室"
    assert len(long_number) > 32
    page = client.post(reverse("customers:person-create"),
                       {**PERSON_FORM, "institution": xiehe.pk, "landline": long_number})  # fmt: skip
    assert page.status_code == 200
    assert page.context["form"].errors["landline"] == [str(normalise.EXTENSION_MESSAGE)]
    assert not Person.objects.filter(name="李娜").exists()


@pytest.mark.parametrize(("typed", "stored"), [
    ("010-12345678 转 8021", "01012345678转8021"), ("010-12345678转8021。", "01012345678转8021"),
    ("010-12345678 ext. 8021", "01012345678转8021"), ("010-12345678 分机：8021", "01012345678转8021"),
    ("010-12345678-8021", "01012345678转8021"), ("010-12345678", "01012345678"),
    ("010-12345678 转 1234，工作日 9:00–17:00", None), ("010-12345678 转 80219999", None),
    ("010-12345678 转王主任", None),
])  # fmt: skip
def test_an_extension_is_its_digits_alone_and_a_note_after_it_is_refused_not_run_into_it(typed, stored):
    """A note after the extension ("转 1234，工作日 9:00–17:00") was read into it: the extension stored was 123490,
    the note's digits run together, and nobody was told. The extension is the digits after the mark, at most six;
    anything else after it is refused, for a person's landline and for an institution's or a caller's phone."""
    for check in (normalise.validate_landline_with_extension,
                  lambda v: normalise.with_extension(normalise.validate_any_phone(v), v)):  # fmt: skip
        if stored is None:
            with pytest.raises(ValidationError) as refused:
                check(typed)
            assert refused.value.messages == [str(normalise.EXTENSION_MESSAGE)]
        else:
            assert check(typed) == stored
