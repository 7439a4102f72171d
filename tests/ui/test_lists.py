"""Customer lists and search pages: filters, paging, ranked search, and a pinned number of queries."""

from __future__ import annotations

import pytest

from pharmacrm.customers import services


@pytest.mark.parametrize("role", ["agent", "rep"])
def test_the_institution_list_needs_a_fixed_number_of_queries(
    client_for, many_customers, role, django_assert_max_num_queries
):
    client = client_for(role)
    client.get("/customers/institutions/")  # warm the session
    with django_assert_max_num_queries(11):
        response = client.get("/customers/institutions/")
    assert response.status_code == 200
    assert response.content.decode().count('href="/customers/institutions/') >= 50


@pytest.mark.parametrize("role", ["agent", "rep"])
def test_the_person_list_needs_a_fixed_number_of_queries(
    client_for, many_customers, role, django_assert_max_num_queries
):
    client = client_for(role)
    client.get("/customers/people/")
    with django_assert_max_num_queries(12):
        response = client.get("/customers/people/?tag=测试")
    assert response.status_code == 200
    assert response.content.decode().count('href="/customers/people/') >= 50


def test_a_search_in_the_list_needs_a_fixed_number_of_queries(
    client_for, many_customers, django_assert_max_num_queries
):
    client = client_for("agent")
    client.get("/customers/institutions/")
    with django_assert_max_num_queries(11):
        response = client.get("/customers/institutions/?q=csz")
    assert "测试诊所00" in response.content.decode()


def test_the_360_page_needs_the_same_queries_for_many_people(
    client_for, xiehe, admin_user, django_assert_max_num_queries
):
    client = client_for("manager")
    url = f"/customers/institutions/{xiehe.pk}/"
    client.get(url)
    for i in range(30):
        services.create_person(
            admin_user, {"name": f"医生{i:02d}", "institution": xiehe, "mobile": f"137{i:08d}"}
        )
    with django_assert_max_num_queries(22):  # 21 + the customer's tickets
        page = client.get(url).content.decode()
    assert "医生29" in page and "137 0000 0029" in page


def test_the_lists_are_paged_by_fifty(client_for, many_customers):
    client = client_for("agent")
    first = client.get("/customers/people/?sort=name").content.decode()
    assert "李00" in first and "李50" not in first
    second = client.get("/customers/people/?sort=name&page=2").content.decode()
    assert "李50" in second and "李00" not in second


def test_filters_narrow_the_institution_list(client_for, xiehe, ruijin, admin_user):
    client = client_for("agent")
    by_province = client.get("/customers/institutions/?province=310000").content.decode()
    assert "瑞金" in by_province and "北京协和医院" not in by_province
    services.update_institution(admin_user, xiehe, {"tier": "key"})
    by_tier = client.get("/customers/institutions/?tier=key").content.decode()
    assert "北京协和医院" in by_tier and "瑞金" not in by_tier
    departments = client.get("/customers/institutions/?type=department").content.decode()
    assert "心内科" in departments and "瑞金" not in departments


def test_departments_are_left_out_of_the_default_list(client_for, xiehe):
    page = client_for("agent").get("/customers/institutions/").content.decode()
    assert "北京协和医院" in page and ">心内科<" not in page


def test_the_person_list_of_one_institution(client_for, xiehe, ruijin, admin_user):
    services.create_person(admin_user, {"name": "赵敏", "institution": ruijin})
    page = client_for("agent").get(f"/customers/people/?institution={xiehe.pk}").content.decode()
    assert "张伟" in page and "赵敏" not in page


def test_a_bad_filter_value_is_ignored_rather_than_failing(client_for, xiehe):
    response = client_for("agent").get("/customers/institutions/?tier=nonsense&province=99&page=abc")
    assert response.status_code == 200
    assert "北京协和医院" in response.content.decode()


def test_search_ranks_hits_and_says_what_matched(client_for, xiehe, doctor):
    client = client_for("agent")
    page = client.get("/customers/search/?q=bjxh").content.decode()
    assert "北京协和医院" in page and "Pinyin" in page
    by_phone = client.get("/customers/search/?q=138-0013-8000").content.decode()
    assert "张伟" in by_phone and "北京协和医院" in by_phone  # the person's institution is shown
    assert "Phone" in by_phone and "138****8000" in by_phone
    by_code = client.get(f"/customers/search/?q={xiehe.credit_code}").content.decode()
    assert "北京协和医院" in by_code and "Credit code" in by_code


def test_search_filters_by_kind(client_for, xiehe, doctor):
    page = client_for("agent").get("/customers/search/?q=张伟&kind=institution").content.decode()
    assert f'href="/customers/people/{doctor.pk}/"' not in page


def test_the_top_bar_suggestions_are_a_short_fragment(client_for, xiehe):
    response = client_for("agent").get("/customers/search/?q=xiehe&as=suggest")
    page = response.content.decode()
    assert "<html" not in page
    assert f'href="/customers/institutions/{xiehe.pk}/"' in page
    nothing = client_for("agent").get("/customers/search/?q=zzzzzz&as=suggest").content.decode()
    assert "No customer matches this search." in nothing


def test_the_search_box_is_on_every_page(client_for):
    page = client_for("agent").get("/").content.decode()
    assert 'role="search"' in page and 'action="/customers/search/"' in page and "htmx-2.min.js" in page


def test_people_are_headed_by_xingming_and_institutions_by_mingcheng(client_for, xiehe):
    """姓名 is a person's name, 名称 an organisation's: the lists and forms use the right word."""
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}  # the ui tests run in English otherwise
    client = client_for("agent")
    people = client.get("/customers/people/", **zh).content.decode()
    assert '<th scope="col">姓名</th>' in people and '<th scope="col">名称</th>' not in people
    institutions = client.get("/customers/institutions/", **zh).content.decode()
    assert '<th scope="col">名称</th>' in institutions
    assert "姓名" in client_for("manager").get("/customers/people/new/", **zh).content.decode()
