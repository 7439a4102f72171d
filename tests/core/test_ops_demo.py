"""`pharmacrm demo`: users for every role, a lived-in customer base, loaded once, never into production."""

from __future__ import annotations

import base64
import re
import stat

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.core import access, audit, demo
from pharmacrm.core.models import Counter, User
from pharmacrm.core.roles import SECOND_FACTOR_ROLES, Role
from pharmacrm.customers import normalise, search, services
from pharmacrm.customers.models import Consent, Institution, Person
from pharmacrm.servicedesk.models import ImprovementAction, SlaClock, Ticket


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


def credentials(path) -> tuple[str, dict[str, str]]:
    text = path.read_text()
    password = re.search(r"^Password for every demo user: (\S+)$", text, re.M).group(1)
    secrets = dict(re.findall(r"^  (\w+): ([A-Z2-7]+) ", text, re.M))
    return password, secrets


def test_it_refuses_a_database_named_by_database_url_unless_forced(settings, tmp_path, monkeypatch):
    settings.DATABASE_URL = "postgres://crm@db.internal/pharmacrm"
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("PHARMACRM_DEMO_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="production"):
        call_command("demo")
    assert not User.objects.exists() and not Institution.objects.exists()

    call_command("demo", "--force", "--scale", "0.05")
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


def test_users_for_every_role_with_a_printed_password_and_totp_secrets(demo_env, capsys):
    call_command("demo", "--scale", "0.05")
    path = demo_env / "demo-credentials.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password, secrets = credentials(path)
    assert password in capsys.readouterr().out

    for role in Role:
        user = User.objects.get(username=role.value)
        assert user.roles == frozenset({role})
        assert user.check_password(password)
    # the roles that need a second factor at sign-in, and the manager, who signs approvals with one
    assert set(secrets) == {r.value for r in SECOND_FACTOR_ROLES} | {"manager"}
    for username, secret in secrets.items():
        device = TOTPDevice.objects.get(user__username=username, confirmed=True)
        code = totp(base64.b32decode(secret), step=device.step, t0=device.t0, digits=device.digits)
        assert device.verify_token(f"{code:0{device.digits}d}"), username


def test_the_password_can_be_given_in_the_environment(demo_env, monkeypatch, capsys):
    monkeypatch.setenv("PHARMACRM_DEMO_PASSWORD", "Demo-Password-2026")
    call_command("demo", "--scale", "0.05")
    assert User.objects.get(username="pv").check_password("Demo-Password-2026")
    assert "Demo-Password-2026" not in (demo_env / "demo-credentials.txt").read_text()
    assert "Demo-Password-2026" not in capsys.readouterr().out


def test_a_second_run_changes_nothing_and_says_so(demo_env, capsys):
    call_command("demo", "--scale", "0.05")
    counts = (User.objects.count(), Institution.objects.count(), Person.objects.count())
    password, _ = credentials(demo_env / "demo-credentials.txt")
    capsys.readouterr()

    call_command("demo")

    assert "already loaded" in capsys.readouterr().out
    assert (User.objects.count(), Institution.objects.count(), Person.objects.count()) == counts
    assert User.objects.get(username="admin").check_password(password)


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_one_loads_is_refused_at_once_in_one_line(demo_env, monkeypatch, capsys):
    """Two `pharmacrm demo` at once (two `make run` in two shells): the second ended in a traceback (SQLite:
    "database is locked"; PostgreSQL: a duplicate user once the first committed). Now it is refused at once with
    one line saying why, and the first loads the data."""
    from tests.core.test_ops_rotate_keys import PausedInAnotherThread

    with PausedInAnotherThread(monkeypatch, demo, "_institutions", "demo", "--scale", "0.05"):
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


def test_the_summary_says_one_person_not_one_people(demo_env, capsys):
    """At a small --scale the summary read "1 people": each count now takes its own singular or plural."""
    call_command("demo", "--scale", "0.0005")
    assert Person.objects.count() == 1
    out = capsys.readouterr().out
    summary = r"^Demo data loaded: \d+ users, \d+ institutions \(\d+ departments?\), 1 person\.$"
    assert re.search(summary, out, re.M), out


def test_the_same_seed_gives_the_same_customers(demo_env):
    result = demo.load(scale=0.05)
    names = list(Institution.objects.order_by("code").values_list("name", "credit_code", "phone"))
    people = list(Person.objects.order_by("code").values_list("name", "title"))
    assert len(names) == result.institutions + result.departments
    # start again on an empty customer base (the users stay)
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.keyaccounts.models import Agreement, KeyAccount, Proposal
    from pharmacrm.safety.models import SafetyCase
    from pharmacrm.sales.models import OrderLine

    Agreement.objects.all().delete()
    Proposal.objects.all().delete()
    KeyAccount.objects.all().delete()
    OrderLine.objects.all().delete()
    SafetyCase.objects.all().delete()
    Interaction.objects.all().delete()
    ImprovementAction.objects.all().delete()
    Ticket.objects.all().delete()
    Person.objects.all().delete()
    Institution.objects.filter(parent__isnull=False).delete()
    Institution.objects.all().delete()
    Counter.objects.all().delete()

    demo.load(scale=0.05)

    assert list(Institution.objects.order_by("code").values_list("name", "credit_code", "phone")) == names
    assert list(Person.objects.order_by("code").values_list("name", "title")) == people


def test_the_demo_has_tickets_in_every_status_with_their_clocks(demo_env):
    demo.load(scale=0.05)
    statuses = set(Ticket.objects.values_list("status", flat=True))
    assert statuses == {"new", "assigned", "in_progress", "waiting", "resolved", "informed", "closed"}
    from pharmacrm.keyaccounts.demo import PAST_TICKETS
    from pharmacrm.keyaccounts.models import KeyAccount

    # the service desk's 150, and last quarter's answered questions of each key account
    total = 150 + len(PAST_TICKETS) * KeyAccount.objects.count()
    assert Ticket.objects.count() == total
    assert SlaClock.objects.count() == 2 * total
    assert set(Ticket.objects.values_list("category__code", flat=True)) >= {"medication_error", "adverse_reaction"}


def test_a_database_with_earlier_demo_data_gets_the_tickets_on_the_next_run(demo_env):
    demo.load(scale=0.05)
    Ticket.objects.all().delete()
    Counter.objects.filter(name="demo:tickets").delete()  # as before the service desk existed
    demo.load(scale=0.05)
    assert Ticket.objects.count() == 150
    demo.load(scale=0.05)
    assert Ticket.objects.count() == 150  # once
