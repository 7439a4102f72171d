"""Review round 22: customer master data — tags, the list and export, imports."""

from __future__ import annotations

from django.urls import reverse

from pharmacrm.customers import services
from pharmacrm.customers.models import Person, Tag


def test_a_tag_typed_in_another_letter_case_or_width_is_the_same_tag(users, client_for, xiehe, ruijin, tmp_path,
                                                                     settings):
    """KOL, kol and ＫＯＬ are one tag: each spelling made a new one, and the list filtered by one found only the
    customers tagged in that spelling."""
    from pharmacrm.customers import importer

    admin = users["admin"]
    services.update_institution(admin, xiehe, {"tags": ["KOL"]}, version=xiehe.version)
    services.update_institution(admin, ruijin, {"tags": ["ｋｏｌ ", "kol"]}, version=ruijin.version)
    doctor = Person.objects.get(name="张伟")
    settings.VAR_DIR = tmp_path / "var"
    path = tmp_path / "people.csv"
    path.write_text(f"内部编号,姓名,标签\n{doctor.code},张伟,\"Kol,核心\"\n", encoding="utf-8")
    job = importer.import_file(str(path), "people", admin, mode="all")
    assert (job.status, job.updated_count) == ("done", 1), job.errors

    assert list(Tag.objects.filter(name__iexact="kol").values_list("name", flat=True)) == ["KOL"]
    assert sorted(t.name for t in Person.objects.get(pk=doctor.pk).tags.all()) == ["KOL", "核心"]
    page = client_for("agent").get(reverse("customers:institutions"), {"tag": "kol"})
    assert {o.pk for o in page.context["rows"]} == {xiehe.pk, ruijin.pk}
    ruijin.refresh_from_db()
    assert services.update_institution(admin, ruijin, {"tags": ["KOL"]}, version=ruijin.version).version == 2


def test_birthdays_typed_in_full_width_spaced_or_with_hao_are_read(users, xiehe, tmp_path, settings):
    """１９７５年３月１５日 (a Chinese input method's full-width digits) was refused as a date that does not exist;
    1975 年 3 月 15 日 (as WPS lays it out), 3月15号 and a database's 1975-03-15 00:00:00.000 as no date."""
    import datetime

    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path / "var"
    written = ["１９７５年３月１５日", "1975 年 3 月 15 日", "1975年3月15号", "1975-03-15 00:00:00.000", "１９７５－０３－１５"]
    path = tmp_path / "people.csv"
    path.write_text(
        "姓名,所属机构,生日\n" + "".join(f"医生{n},{xiehe.code},{day}\n" for n, day in enumerate(written)), encoding="utf-8"
    )
    job = importer.import_file(str(path), "people", users["admin"], mode="all")
    assert (job.status, job.created_count, job.errors) == ("done", 5, [])
    born = {p.birthday for p in Person.objects.filter(name__startswith="医生")}
    assert born == {datetime.date(1975, 3, 15)}


def test_a_role_column_holding_professional_titles_gives_role_and_title(users, xiehe, tmp_path, settings):
    """角色 filled with 主任医师, 主管药师 … (as many hospital lists fill it) was refused row by row as no role: it is
    a doctor (pharmacist, nurse) with that title; a 职称 column of its own still gives the title."""
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path / "var"
    path = tmp_path / "people.csv"
    path.write_text(f"姓名,所属机构,角色\n王主任,{xiehe.code},主任医师\n陈药师,{xiehe.code},主管药师\n"
                    f"刘护士,{xiehe.code},副主任护师\n", encoding="utf-8")  # fmt: skip
    job = importer.import_file(str(path), "people", users["admin"], mode="all")
    assert (job.status, job.created_count, job.errors) == ("done", 3, [])
    got = {p.name: (p.role, p.title) for p in Person.objects.filter(name__in=["王主任", "陈药师", "刘护士"])}
    assert got == {"王主任": ("doctor", "主任医师"), "陈药师": ("pharmacist", "主管药师"), "刘护士": ("nurse", "副主任护师")}

    path.write_text(f"姓名,所属机构,角色,职称\n赵医生,{xiehe.code},主治医师,科室副主任\n", encoding="utf-8")
    job = importer.import_file(str(path), "people", users["admin"], mode="all")
    assert (job.status, job.errors) == ("done", [])
    assert Person.objects.filter(name="赵医生", role="doctor", title="科室副主任").exists()


def test_a_record_changed_after_its_delete_page_was_opened_is_not_deleted(users, client_for, ruijin):
    """Two people on one record: the one confirming a deletion deleted the colleague's change with it, unseen."""
    from django.utils import translation

    from pharmacrm.customers.models import Institution

    client = client_for("admin")
    url = reverse("customers:institution-delete", args=[ruijin.pk])
    page = client.get(url)
    assert 'name="version" value="1"' in page.content.decode()
    services.update_institution(users["kam"], ruijin, {"notes": "院长已同意下月试用"}, version=1)

    with translation.override("en"):
        refused = client.post(url, {"version": "1"}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert Institution.objects.filter(pk=ruijin.pk).exists()
    assert "Someone changed this record after you opened the page to delete it" in refused.content.decode()
    client.post(url, {"version": "2"})
    assert not Institution.objects.filter(pk=ruijin.pk).exists()


def test_a_delete_without_a_version_is_stale_and_a_delete_sent_twice_shows_the_list(client_for, users, ruijin):
    """The delete page always carries the version it showed: a form without one (an old page) deleted whatever the
    record held by then. It is refused as stale now. Sent twice (a double click), the second answered "not found";
    it now shows the list, saying the record was deleted already."""
    from pharmacrm.customers.models import Institution

    client = client_for("admin")
    url = reverse("customers:institution-delete", args=[ruijin.pk])

    refused = client.post(url, {}, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert "Someone changed this record after you opened the page to delete it" in refused.content.decode()
    assert Institution.objects.filter(pk=ruijin.pk).exists()
    assert client.post(url, {"version": "1"}).status_code == 302
    again = client.post(url, {"version": "1"}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert again.redirect_chain[-1][0] == reverse("customers:institutions")
    assert "This record was deleted already." in again.content.decode()
    # another administrator's second click on the same page: theirs was not the deletion, the usual 404
    assert client_for("manager").post(url, {"version": "1"}).status_code == 404
