"""The split orders page (/sales/orders/splits/): the orders whose lines name two customers or carry two order dates,
for those who see purchases (a rep only the orders of their territory's customers); those who import orders repair
one there, keeping the part they choose, through the command's own repair (sales.splits.repair)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.sales import rollups, splits
from pharmacrm.sales.models import MonthlyRollup, OrderLine

from .conftest import line, split_before_session_56

ROLES = [r.value for r in Role]
VIEWERS = {"admin", "manager", "kam", "rep", "analyst", "auditor"}  # they see purchases
REPAIRERS = {"admin", "manager"}  # they import orders
PAGE = "/sales/orders/splits/"
REPAIR = "/sales/orders/splits/repair/"


def shown(page: str) -> list[str]:
    import re

    return re.findall(r'class="card split-order" data-order="([^"]+)"', page)


def said(response) -> list[str]:
    """The messages waiting for the next page (those of earlier requests of the client not yet shown too)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("role", ROLES)
def test_the_page_is_for_those_who_see_purchases_and_repairs_for_those_who_import(client_for, planted, role):
    response = client_for(role).get(PAGE)

    assert response.status_code == (200 if role in VIEWERS else 403)
    if role in VIEWERS:
        page = response.content.decode()
        # the rep sees no order that names a customer outside the territory (华山, Shanghai)
        assert shown(page) == (["SO-3", "SO-5"] if role == "rep" else ["SO-1", "SO-3", "SO-5"])
        assert ('action="/sales/orders/splits/repair/"' in page) == (role in REPAIRERS)
        assert ('type="radio"' in page) == (role in REPAIRERS)
    repair = client_for(role).get(REPAIR, {"order": "SO-5"})
    assert repair.status_code == (200 if role in REPAIRERS else 403)
    posted = client_for(role).post(REPAIR, {"order": "SO-5"})
    assert posted.status_code == (302 if role in REPAIRERS else 403)
    assert OrderLine.objects.filter(order_number="SO-5").values("institution_id").distinct().count() == (
        1 if role in REPAIRERS else 2)  # fmt: skip


def test_the_list_shows_each_part_with_its_lines_amounts_and_the_part_kept(client_for, planted):
    xiehe, huashan, _dongcheng = planted
    page = client_for("manager").get(PAGE, {"order": "SO-1"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert shown(page) == ["SO-1"] and "1 split order." in page
    section = page[page.index('data-order="SO-1"'):]
    section = section[: section.index("</section>")]
    rows = section.split('<tr class="split-part"')[1:]
    # 华山's line was imported last: it keeps the order, listed first and chosen by default
    assert f'data-customer="{huashan.pk}"' in rows[0] and "checked" in rows[0]
    assert f'href="/customers/institutions/{huashan.pk}/"' in rows[0] and huashan.credit_code in rows[0]
    assert ">3<" in rows[0] and "¥100.00" in rows[0] and "2026-03-05" in rows[0]
    assert "kept: the customer of the line imported last" in rows[0]
    assert f'data-customer="{xiehe.pk}"' in rows[1] and "checked" not in rows[1]
    assert "1, 2" in rows[1] and "¥250.00" in rows[1] and "its lines move to the customer kept" in rows[1]
    assert "Line 3 was imported last" in section


def test_an_order_split_between_dates_lists_its_dates_the_one_imported_last_first(client_for, planted):
    page = client_for("admin").get(PAGE, {"order": "so-3"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert shown(page) == ["SO-3"] and "split-customers" not in page
    rows = page.split('<tr class="split-part"')[1:]
    assert 'data-date="2026-04-01"' in rows[0] and "checked" in rows[0] and "¥100.00" in rows[0]
    assert 'data-date="2026-03-31"' in rows[1] and "1, 2" in rows[1] and "¥250.00" in rows[1]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"customer": "{huashan}"}, ["SO-1"]),
        ({"customer": "{dongcheng}"}, ["SO-5"]),
        ({"date_from": "2026-04-01"}, ["SO-3", "SO-5"]),  # SO-3: one of its dates
        ({"date_from": "2026-03-01", "date_to": "2026-03-31"}, ["SO-1", "SO-3"]),
        ({"order": "so-"}, ["SO-1", "SO-3", "SO-5"]),
        ({"date_from": "2026-05-01", "date_to": "2026-04-01"}, []),  # refused by name, nothing listed
    ],
)
def test_the_filters_narrow_the_list(client_for, planted, query, expected):
    _xiehe, huashan, dongcheng = planted
    query = {k: v.format(huashan=huashan.pk, dongcheng=dongcheng.pk) for k, v in query.items()}

    page = client_for("manager").get(PAGE, query).content.decode()

    assert shown(page) == expected


def test_the_list_pages(client_for, planted, monkeypatch):
    from pharmacrm.sales import views_splits

    monkeypatch.setattr(views_splits, "PAGE", 2)
    admin = client_for("admin")

    first = admin.get(PAGE, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    second = admin.get(PAGE, {"page": "2"}).content.decode()

    assert shown(first) == ["SO-1", "SO-3"] and shown(second) == ["SO-5"]
    assert "3 split orders." in first and "Page 1 of 2" in first


def _rollups() -> set[tuple]:
    fields = [f.name for f in MonthlyRollup._meta.fields if f.name not in ("id", "updated_at")]
    return set(MonthlyRollup.objects.values_list(*fields))


def test_a_repair_keeps_the_part_chosen_and_the_rollups_match_a_recomputation(client_for, planted, users):
    xiehe, huashan, _dongcheng = planted
    manager = client_for("manager")

    confirm = manager.get(REPAIR, {"order": "SO-1", "customer": xiehe.pk}, HTTP_ACCEPT_LANGUAGE="en")
    assert confirm.status_code == 200
    assert f"Line 3 of {huashan.name} (¥100.00) moves to {xiehe.name}." in confirm.content.decode()
    assert OrderLine.objects.filter(order_number="SO-1", institution=huashan).exists()  # nothing changed yet

    done = manager.post(REPAIR, {"order": "SO-1", "customer": xiehe.pk, "next": f"{PAGE}?order=SO"},
                        HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert done.status_code == 302 and done["Location"] == f"{PAGE}?order=SO"
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {xiehe.pk}
    assert said(done) == [f"Order SO-1 was repaired: its lines all name {xiehe.name} and carry the order date "
                          "2026-03-05 (1 line(s) moved, 0 line(s) given that date); the customers' monthly purchases "
                          "were recomputed."]  # fmt: skip
    # the operator's choice, not the default (华山, imported last): 协和 has the whole order, 华山 none of it
    march = dt.date(2026, 3, 1)
    assert MonthlyRollup.objects.values_list("orders", "amount_fen").get(institution=xiehe, month=march) == (
        3, 35000 + 1000 + 25000)  # SO-1 whole, SO-2, SO-3's lines of 31 March  # fmt: skip
    assert not MonthlyRollup.objects.filter(institution=huashan).exists()
    after = _rollups()
    MonthlyRollup.objects.all().delete()
    rollups.rebuild_all()
    assert _rollups() == after  # as a recomputation from the lines gives them
    entry = AuditEntry.objects.get(object_type="sales.orderline", object_repr="SO-1/3")
    assert entry.changes == {"institution": [huashan.pk, xiehe.pk]} and entry.actor == users["manager"]
    assert entry.extra["reason"] == "split order" and entry.extra["source"] == "form"
    assert shown(manager.get(PAGE).content.decode()) == ["SO-3", "SO-5"]


def test_a_date_chosen_by_the_operator_is_audited_as_chosen(client_for, planted):
    xiehe, _huashan, _dongcheng = planted

    client_for("admin").post(REPAIR, {"order": "SO-3", "order_date": "2026-03-31"})

    assert set(OrderLine.objects.filter(order_number="SO-3").values_list("order_date", flat=True)) == {dt.date(2026, 3, 31)}
    entry = AuditEntry.objects.get(object_type="sales.orderline", object_repr="SO-3/3")
    assert entry.changes == {"order_date": ["2026-04-01", "2026-03-31"]}
    assert entry.extra["reason"] == "split order date chosen"
    assert MonthlyRollup.objects.values_list("orders", "amount_fen").get(institution=xiehe, month=dt.date(2026, 3, 1))[1] == 1000 + 25000 + 10000 + 25000  # fmt: skip
    assert not MonthlyRollup.objects.filter(institution=xiehe, month=dt.date(2026, 4, 1), orders__gt=0).exists()


def test_the_same_repair_sent_twice_repairs_once_and_the_second_says_so(client_for, planted, users):
    xiehe, huashan, _dongcheng = planted
    admin = client_for("admin")

    first = admin.post(REPAIR, {"order": "SO-1", "customer": huashan.pk}, HTTP_ACCEPT_LANGUAGE="en")
    second = admin.post(REPAIR, {"order": "SO-1", "customer": huashan.pk}, HTTP_ACCEPT_LANGUAGE="en")

    assert first.status_code == second.status_code == 302
    assert AuditEntry.objects.filter(object_type="sales.orderline", action="update").count() == 2  # lines 1 and 2, once
    at = timezone.localtime(AuditEntry.objects.get(object_repr="SO-1/1").at)
    assert said(second)[-1] == (f"Order SO-1 was repaired already, by {users['admin']} at {at:%Y-%m-%d %H:%M}: "
                                "nothing was changed.")  # (the first's message not read: no redirect followed)
    # a colleague choosing the other customer from a page read before: told, and the order stays as repaired
    late = client_for("manager").post(REPAIR, {"order": "SO-1", "customer": xiehe.pk}, HTTP_ACCEPT_LANGUAGE="en")
    assert "was repaired already, by admin" in said(late)[0]
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {huashan.pk}
    # the confirmation page of an order repaired meanwhile goes back to the list, saying so
    again = client_for("manager").get(REPAIR, {"order": "SO-1"}, HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 302 and "was repaired already" in " ".join(said(again))


def test_an_order_never_split_or_a_part_it_lacks_is_refused(client_for, planted, dongcheng):
    admin = client_for("admin")

    assert admin.get(REPAIR, {"order": "SO-2"}).status_code == 404
    assert admin.post(REPAIR, {"order": "SO-2"}).status_code == 404
    refused = admin.post(REPAIR, {"order": "SO-1", "customer": dongcheng.pk}, HTTP_ACCEPT_LANGUAGE="en")
    assert said(refused)[-1] == f"{dongcheng.name} is not one of the customers of order SO-1."
    refused = admin.post(REPAIR, {"order": "SO-3", "order_date": "2026-03-30"}, HTTP_ACCEPT_LANGUAGE="en")
    assert said(refused)[-1] == "2026-03-30 is not one of the order dates of order SO-3."
    refused = admin.post(REPAIR, {"order": "SO-3", "order_date": "31.03.2026"}, HTTP_ACCEPT_LANGUAGE="en")
    assert said(refused)[-1].startswith("Order date: ")
    assert splits.split_numbers() == ["SO-1", "SO-3", "SO-5"]  # nothing changed


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_readers_shown_personal_data_masked_read_it_as_the_order_lines_show_it(client_for, planted, role):
    """The page names customers as the order lines do (institutions: name, credit code); no person and no contact
    detail is on it, for those who see personal data masked as for everyone."""
    xiehe, _huashan, _dongcheng = planted
    page = client_for(role).get(PAGE).content.decode()

    assert xiehe.name in page and xiehe.credit_code in page
    assert "13800138000" not in page and "138****8000" not in page and "张伟" not in page  # 协和's doctor
    assert "010-69156114" not in page  # 协和's phone


def test_the_order_list_and_the_order_import_page_link_to_it_with_the_count(client_for, planted):
    admin, rep = client_for("admin"), client_for("rep")

    assert 'id="split-orders-link"' in admin.get("/sales/orders/").content.decode()
    assert "3 split orders" in admin.get("/sales/orders/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "2 split orders" in rep.get("/sales/orders/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    page = admin.get("/customers/import/?target=orders", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'href="/sales/orders/splits/"' in page and "3 split orders" in page
    assert 'href="/sales/orders/splits/"' not in admin.get("/customers/import/?target=institutions").content.decode()
    client_for("admin").post(REPAIR, {"order": "SO-1"})
    assert "2 split orders" in admin.get("/customers/import/?target=orders", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_an_import_that_names_a_split_order_says_so_and_links_to_the_page(client_for, planted, run_import, xiehe):
    # 协和's line 2 of SO-1 corrected (its quantity): the row agrees with its stored customer, so it is imported
    job = run_import([line("SO-1", 2, "2026-03-05", xiehe, "P2", 3, "50"), line("SO-7", 1, "2026-06-01", xiehe, "P1", 1, "10")])

    assert job.updated_count == 1 and job.created_count == 1
    page = client_for("admin").get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1 order named in this file is split" in page
    assert 'href="/sales/orders/splits/?order=SO-1"' in page
    # once repaired, the result no longer links to it
    client_for("admin").post(REPAIR, {"order": "SO-1"})
    page = client_for("admin").get(f"/customers/import/{job.pk}/").content.decode()
    assert "/sales/orders/splits/" not in page


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_managers_repairing_one_order_at_once_the_second_finds_it_repaired(planted, users, client_for):
    """The manager's repair holds the writers' lock while the admin's page sends its own choice: the admin's waits,
    then reads the order again and finds it repaired, rather than moving its lines a second time."""
    from tests.concurrency import held_while

    xiehe, huashan, _dongcheng = planted
    admin = client_for("admin")
    answers = []

    def second():
        answers.append(admin.post(REPAIR, {"order": "SO-1", "customer": xiehe.pk}, HTTP_ACCEPT_LANGUAGE="en"))

    held_while(lambda: splits.repair("SO-1", users["manager"], customer=huashan.pk, source="form"), second)

    assert answers and answers[0].status_code == 302
    assert "was repaired already, by manager" in said(answers[0])[0]
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {huashan.pk}
    assert AuditEntry.objects.filter(object_type="sales.orderline", action="update").count() == 2


def _more_split_orders(run_import, xiehe, dongcheng, count: int) -> None:
    for n in range(count):
        assert run_import([line(f"SO-M{n}", 1, "2026-05-12", xiehe, "P1", 1, "10"),
                           line(f"SO-N{n}", 2, "2026-05-12", dongcheng, "P1", 1, "10")]).error_count == 0  # fmt: skip
        split_before_session_56(f"SO-M{n}", f"SO-N{n}")


def test_the_page_costs_as_many_queries_whatever_the_number_of_split_orders(client_for, planted, run_import):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    xiehe, _huashan, dongcheng = planted
    manager = client_for("manager")

    def cost() -> int:
        manager.get(PAGE)  # the session, the list of split orders kept
        with CaptureQueriesContext(connection) as queries:
            page = manager.get(PAGE).content.decode()
        return len(queries), len(shown(page))

    few = cost()
    _more_split_orders(run_import, xiehe, dongcheng, 4)
    cache.delete(splits.CACHE_KEY)  # a new pass
    assert cost() == (few[0], few[1] + 4)


def test_the_pages_keep_the_list_a_pass_found_and_the_command_makes_it_again(client_for, planted, run_import):
    """No import stores a new split order: the pages read again only the orders the last pass found (a day), and
    `split-check` makes a new pass (what planting one by hand, as these tests do, needs)."""
    from django.core.management import call_command

    xiehe, _huashan, dongcheng = planted
    manager = client_for("manager")
    assert shown(manager.get(PAGE).content.decode()) == ["SO-1", "SO-3", "SO-5"]
    _more_split_orders(run_import, xiehe, dongcheng, 1)

    assert shown(manager.get(PAGE).content.decode()) == ["SO-1", "SO-3", "SO-5"]
    with pytest.raises(SystemExit):
        call_command("orders", "split-check", stdout=io.StringIO())
    assert shown(manager.get(PAGE).content.decode()) == ["SO-1", "SO-3", "SO-5", "SO-M0"]
