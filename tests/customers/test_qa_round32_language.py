"""Thirty-second session: a person's preferred language (沟通语言) — the form, the Customer 360 page, the API,
import and export, the audit trail and the demo data. What the service desk does with it is tested with the real
mail servers in tests/servicedesk/test_qa_round32_mail.py."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import importer, services
from pharmacrm.customers.models import Person
from tests.customers.test_export import column, export


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def _doctor() -> Person:
    return Person.objects.get(name="张伟")


def _form_data(client, url) -> dict:
    form = client.get(url).context["form"]
    return {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}


def test_an_agent_sets_the_preferred_language_in_the_form_and_reads_it_on_the_360_page(users, client_for, xiehe):
    """A foreign KOL prefers English: the record had nowhere to say so. The form offers it (blank: as their mail is
    written), the 360 page shows it, and the change is in the record's audit trail."""
    person = _doctor()
    client = client_for("kam")
    url = reverse("customers:person-edit", args=[person.pk])
    data = _form_data(client, url)
    assert data["preferred_language"] == ""
    data["preferred_language"] = "en"
    answer = client.post(url, data)
    assert answer.status_code == 302, answer.context["form"].errors if answer.context else answer
    person.refresh_from_db()
    assert person.preferred_language == "en"
    entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(person.pk), action="update").last()
    assert entry.changes["preferred_language"] == ["", "en"]

    users["kam"].language = "en"
    users["kam"].save(update_fields=["language"])
    page = client.get(reverse("customers:person", args=[person.pk])).content.decode()
    assert 'id="preferred-language">English<' in page


def test_a_new_person_with_an_unknown_language_is_refused_naming_the_field_and_nothing_is_saved(client_for, xiehe):
    client = client_for("kam")
    url = reverse("customers:person-create")
    form = client.get(url).context["form"]
    answer = client.post(url, {
        "name": "Dr. Smith", "role": "doctor", "institution": xiehe.pk, "preferred_language": "fr",
        "tier": "new", "stage": "potential", "form_token": form["form_token"].value(), "version": "",
    })  # fmt: skip
    assert answer.status_code == 200
    assert "preferred_language" in answer.context["form"].errors
    assert 'id="field-preferred_language"' in answer.content.decode()
    assert not Person.objects.filter(name="Dr. Smith").exists()


def test_the_services_refuse_an_unknown_language_code_naming_the_field(admin_user, xiehe):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as e:
        services.update_person(admin_user, _doctor(), {"preferred_language": "de"})
    assert "preferred_language" in e.value.message_dict


def test_the_import_reads_the_language_column_in_chinese_and_english_words(users, xiehe, tmp_path):
    """沟通语言 takes 中文 / 简体 / English / 英文 / 繁體 …; anything else is a row error naming the column, in the
    reader's language, and in "only good rows" nothing of that row is written."""
    rows = "姓名,所属机构,手机,沟通语言\n" + "\n".join(
        f"{name},{xiehe.credit_code},{mobile},{word}" for name, mobile, word in (
            ("甲", "13800138101", "中文"), ("乙", "13800138102", "简体"), ("丙", "13800138103", "English"),
            ("丁", "13800138104", "英文"), ("戊", "13800138105", "繁體"), ("己", "13800138106", "繁體中文"),
            ("庚", "13800138107", ""), ("辛", "13800138108", "法语"),
        )
    ) + "\n"  # fmt: skip
    path = tmp_path / "people.csv"
    path.write_bytes(rows.encode("utf-8"))
    job = importer.import_file(str(path), "people", users["kam"], mode="good")
    assert [(e["row"], e["column"], e["code"]) for e in job.errors] == [(9, "沟通语言", "invalid_choice")]
    with translation.override("en"):
        text = importer.error_text(job.errors[0])
    assert "“法语” is not an accepted value" in text and "English" in text  # the accepted words in English too
    got = {p.name: p.preferred_language for p in Person.objects.filter(name__in="甲乙丙丁戊己庚辛")}
    assert got == {"甲": "zh-hans", "乙": "zh-hans", "丙": "en", "丁": "en", "戊": "zh-hant", "己": "zh-hant", "庚": ""}


def test_the_export_writes_the_language_in_the_templates_words_and_imports_back(client_for, users, xiehe):
    services.update_person(users["admin"], _doctor(), {"preferred_language": "en"})
    rows = export(client_for("kam"), "people")
    assert column(rows, "沟通语言") == ["英文"]
