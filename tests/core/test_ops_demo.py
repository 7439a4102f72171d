"""`pharmacrm demo`: never into production, the full-size customer base, two runs at once, the password from the
environment, the summary's wording. What a demo load holds is checked on one shared load in test_demo_contents.py."""

from __future__ import annotations

import re

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from pharmacrm.core import access, audit, demo
from pharmacrm.core.models import Counter, User
from pharmacrm.customers import normalise, search, services
from pharmacrm.customers.models import Consent, Institution, Person


@pytest.fixture(autouse=True)
def _english_output():
    """These tests read the commands' messages in English (the product's default language is zh-hans)."""
    with translation.override("en"):
        yield


pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_env(settings, tmp_path, monkeypatch):
    """A non-production configuration with its own var/ directory."""
    settings.DATABASE_URL = None
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("PHARMACRM_DEMO_PASSWORD", raising=False)
    return tmp_path


def customers_only(monkeypatch) -> None:
    """The demo's customers and users without the records of the later features (tickets, key accounts, orders …),
    for a test about the command itself: those cost 8–20 s even at the smallest scale, and the full demo test and
    tests/core/test_demo_contents.py check them."""
    monkeypatch.setattr(demo, "_later_demo_data", lambda scale: None)


def test_it_refuses_a_database_named_by_database_url_unless_forced(settings, tmp_path, monkeypatch):
    customers_only(monkeypatch)
    settings.DATABASE_URL = "postgres://crm@db.internal/pharmacrm"
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("PHARMACRM_DEMO_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="production"):
        call_command("demo")
    assert not User.objects.exists() and not Institution.objects.exists()

    call_command("demo", "--force", "--scale", "0.0005")
    assert User.objects.filter(username="admin").exists() and Institution.objects.exists()


def test_the_full_demo_is_a_lived_in_customer_base(demo_env, capsys):
    call_command("demo")  # how long it takes is a benchmark's business, not a test's: the machines are shared

    orgs = Institution.objects.exclude(kind="department")
    assert 280 <= orgs.count() <= 330
    assert Institution.objects.filter(kind="department").count() >= 200
    assert 1900 <= Person.objects.count() <= 2100
    assert {
        "hospital",
        "clinic",
        "township",
        "community",
        "pharmacy",
        "distributor",
        "insurance",
        "research",
    } <= set(orgs.values_list("kind", flat=True))
    assert {"3A", "3B", "2A", "2B"} <= set(orgs.filter(kind="hospital").values_list("grade", flat=True))
    assert len({code[:2] for code in orgs.values_list("region_id", flat=True)}) >= 25  # provinces
    assert Consent.objects.filter(status="withdrawn").exists()

    # every record is valid by the same rules the forms and imports apply
    for inst in orgs.exclude(credit_code=None):
        assert normalise.validate_credit_code(inst.credit_code) == inst.credit_code
    for phone in Institution.objects.exclude(phone="").values_list("phone", flat=True):
        normalise.validate_landline(phone)
    for p in Person.objects.all():
        if p.mobile:
            normalise.validate_mobile(p.mobile)
        if p.landline:
            normalise.validate_landline(p.landline)
        if p.email:
            normalise.validate_email_address(p.email)
    assert Institution.objects.filter(name__endswith="第一人民医院").exists()
    assert Institution.objects.filter(name__endswith="医疗保障局").exists()

    # the duplicates pages have something to show
    assert {"phone", "name_city"} <= {g.reason for g in services.institution_duplicates()}
    assert "phone" in {g.reason for g in services.person_duplicates()}

    # searchable: pinyin initials and phone find demo records
    agent = User.objects.get(username="agent")
    hospital = orgs.filter(kind="hospital", grade="3A").order_by("code").first()
    initials = "".join(s[0] for s in search.syllables(hospital.name_norm))
    assert hospital in [h.obj for h in search.search(agent, initials, limit=50)]
    doctor = Person.objects.exclude(mobile_bidx="").order_by("code").first()
    assert doctor in [h.obj for h in search.search(agent, doctor.mobile)]

    # the rep works the North team's territory (华北), not the whole country
    rep = User.objects.get(username="rep")
    seen = access.institutions_for(rep)
    assert 0 < seen.count() < Institution.objects.count()
    assert {code[:2] for code in seen.values_list("region_id", flat=True)} <= {"11", "12", "13", "14", "15"}

    assert audit.verify().ok
    out = capsys.readouterr().out
    assert "shown once" in out and str(demo_env / "demo-credentials.txt") in out


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_one_loads_is_refused_at_once_in_one_line(demo_env, monkeypatch, capsys):
    """Two `pharmacrm demo` at once (two `make run` in two shells): the second ended in a traceback (SQLite:
    "database is locked"; PostgreSQL: a duplicate user once the first committed). Now it is refused at once with
    one line saying why, and the first loads the data."""
    from tests.core.test_ops_rotate_keys import PausedInAnotherThread

    customers_only(monkeypatch)
    with PausedInAnotherThread(monkeypatch, demo, "_institutions", "demo", "--scale", "0.0005"):
        with pytest.raises(CommandError) as refused:
            call_command("demo", "--scale", "0.05")
        assert str(refused.value) == (
            "Nothing was changed: another demo load is running on this database. Wait for it to finish; it "
            "loads the demo data."
        )
    assert Counter.objects.filter(name=demo.MARKER).exists()
    assert User.objects.filter(username="admin").exists()
    capsys.readouterr()
    call_command("demo")  # the lock went with the first run
    assert "already loaded" in capsys.readouterr().out


def test_a_password_from_the_environment_is_never_printed_and_the_summary_says_one_person(
    demo_env, monkeypatch, capsys
):
    """The summary read "1 people" at a small --scale: each count now takes its own singular or plural."""
    monkeypatch.setenv("PHARMACRM_DEMO_PASSWORD", "Demo-Password-2026")
    call_command("demo", "--scale", "0.0005")
    assert Person.objects.count() == 1
    assert User.objects.get(username="pv").check_password("Demo-Password-2026")
    assert "Demo-Password-2026" not in (demo_env / "demo-credentials.txt").read_text()
    out = capsys.readouterr().out
    assert "Demo-Password-2026" not in out
    summary = r"^Demo data loaded: \d+ users; (\d+) institutions?, plus (\d+) departments? in them; 1 person\.$"
    found = re.search(summary, out, re.M)
    assert found, out
    # the institutions counted are the top-level ones, the departments come on top (the summary read
    # "305 家机构（含 408 个科室）", as if the 408 were among the 305)
    top, departments = int(found[1]), int(found[2])
    assert top == Institution.objects.filter(parent=None).count()
    assert top + departments == Institution.objects.count()
