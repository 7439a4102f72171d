"""The audit trail is append-only and hash-chained: `pharmacrm audit verify` finds any edited or deleted entry."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _english_problems():
    """The problems are reported in the active language (the command's: zh-hans); these tests read them in English."""
    with translation.override("en"):
        yield


def record_five() -> list[AuditEntry]:
    return [
        audit.record(
            AuditEntry.Action.UPDATE,
            ("customers.institution", str(n), f"第{n}人民医院"),
            changes={"tier": ["regular", "vip"]},
            actor_name="tester",
        )
        for n in range(1, 6)
    ]


@pytest.fixture
def triggers_lifted():
    """Take the append-only triggers away for the test (as an attacker with DB access would) and put them back."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE core_auditentry DISABLE TRIGGER USER")
            restore = ["ALTER TABLE core_auditentry ENABLE TRIGGER USER"]
        else:
            cur.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'core_auditentry'"
            )
            found = cur.fetchall()
            assert {name for name, _sql in found} == {"audit_no_update", "audit_no_delete"}
            for name, _sql in found:
                cur.execute(f'DROP TRIGGER "{name}"')
            restore = [sql for _name, sql in found]
    yield
    with connection.cursor() as cur:
        for sql in restore:
            cur.execute(sql)


def raw(sql: str, params=()) -> None:
    with connection.cursor() as cur:
        cur.execute(sql, params)


def test_an_untouched_chain_verifies_and_the_command_says_so(capsys):
    record_five()
    result = audit.verify()
    assert result.ok and result.checked == 5
    call_command("audit", "verify")
    assert "5" in capsys.readouterr().out


def test_the_database_refuses_to_edit_or_delete_an_entry():
    entries = record_five()
    for sql in (
        "UPDATE core_auditentry SET object_repr = 'changed' WHERE seq = %s",
        "DELETE FROM core_auditentry WHERE seq = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            raw(sql, [entries[2].seq])
    assert AuditEntry.objects.get(seq=3).object_repr == "第3人民医院"
    assert audit.verify().ok


def test_an_edited_entry_is_reported_by_its_number(triggers_lifted):
    record_five()
    raw(
        "UPDATE core_auditentry SET changes = %s WHERE seq = 3",
        [json.dumps({"tier": ["regular", "key"]})],
    )
    result = audit.verify()
    assert result.problems == ["entry 3: content does not match its hash (edited)"]


def test_an_entry_edited_with_its_hash_recomputed_breaks_the_next_link(triggers_lifted):
    record_five()
    raw("UPDATE core_auditentry SET actor_name = 'someone-else' WHERE seq = 2")
    forged = AuditEntry.objects.get(seq=2)
    raw("UPDATE core_auditentry SET hash = %s WHERE seq = 2", [audit._digest(forged.prev_hash, forged)])
    result = audit.verify()
    assert result.problems == ["entry 3: link to the previous entry is broken"]


def test_a_deleted_entry_is_reported(triggers_lifted):
    record_five()
    raw("DELETE FROM core_auditentry WHERE seq = 4")
    result = audit.verify()
    assert any("4..4" in p and "missing" in p for p in result.problems), result.problems
    assert result.checked == 4


def test_a_deleted_last_entry_is_detected_through_the_chain_head(triggers_lifted):
    record_five()
    raw("DELETE FROM core_auditentry WHERE seq = 5")
    result = audit.verify()
    assert not result.ok
    assert any("ends at entry 4" in p and "head records entry 5" in p for p in result.problems), (
        result.problems
    )


def test_an_entry_slipped_in_before_the_first_one_is_reported():
    """The triggers refuse edits and deletions, not new rows: anyone who can write to the database could add a
    forged entry (a sign-in, a read of personal data) numbered 0 or below, with a hash that fits its own
    content. `audit verify` started at entry 1 and called the trail intact, while the audit page listed the
    forgery."""
    record_five()
    first = AuditEntry.objects.get(seq=1)
    for seq in (0, -7):
        forged = AuditEntry(
            seq=seq, at=first.at, actor_name="wangfang", action=AuditEntry.Action.READ_PERSONAL,
            object_type="customers.person", object_id="12", object_repr="张伟", changes={}, extra={},
            request_id="forged", ip=None, prev_hash=audit.GENESIS,
        )  # fmt: skip
        forged.hash = audit._digest(audit.GENESIS, forged)
        forged.save(force_insert=True)
    result = audit.verify()
    assert result.problems == [
        "entry -7: numbered before the first entry, outside the chain (added)",
        "entry 0: numbered before the first entry, outside the chain (added)",
    ]
    assert result.checked == 5


def test_an_entry_written_while_verify_runs_is_no_tampering():
    """The application keeps writing while `audit verify` runs (monitoring runs it on the live system). An entry
    written after verify had read the last one and before it read the chain's head made the head look ahead of
    the chain: "tail deleted or edited", exit status 1, a false alarm. Here the entry goes in just before verify
    reads the head, as another request's would."""
    record_five()
    written: list[bool] = []

    def another_request(execute, sql, params, many, context):
        if "core_auditchainhead" in sql and sql.lstrip().upper().startswith("SELECT") and not written:
            written.append(True)  # once: the entry's own writing reads the head too
            audit.record(AuditEntry.Action.LOGIN, ("core.user", "", "kam"), actor_name="kam")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(another_request):
        result = audit.verify()
    assert written and result.ok, result.problems
    last = AuditEntry.objects.order_by("seq").last()
    assert (result.checked, result.last_seq, result.last_hash) == (6, 6, last.hash)


def test_the_verify_command_exits_non_zero_and_lists_every_problem(triggers_lifted, capsys):
    record_five()
    raw("UPDATE core_auditentry SET object_repr = 'x' WHERE seq = 1")
    raw("DELETE FROM core_auditentry WHERE seq = 3")
    with pytest.raises(CommandError) as failed:
        call_command("audit", "verify")
    assert failed.value.returncode == 1
    err = capsys.readouterr().err
    assert "entry 1: content does not match its hash (edited)" in err
    assert "entries 3..3 are missing (deleted)" in err


@pytest.mark.django_db
def test_entries_written_in_bulk_chain_like_single_ones_and_a_later_edit_is_still_found(triggers_lifted):
    audit.record(AuditEntry.Action.UPDATE, ("customers.institution", "1", "a"), changes={"tier": ["new", "vip"]})
    written = audit.record_many(
        AuditEntry.Action.UPDATE,
        [(("customers.institution", str(i), ""), {"tier": ["new", "regular"]}) for i in range(2, 6)],
        reason="evaluation",
    )
    audit.record(AuditEntry.Action.UPDATE, ("customers.institution", "9", "z"), changes={"tier": ["new", "vip"]})
    assert written == 4
    seqs = list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert audit.verify().ok
    entry = AuditEntry.objects.get(object_id="3", object_type="customers.institution")
    assert entry.extra["reason"] == "evaluation" and entry.changes == {"tier": ["new", "regular"]}
    AuditEntry.objects.filter(pk=entry.pk).update(changes={"tier": ["new", "vip"]})
    result = audit.verify()
    assert not result.ok and any(str(entry.seq) in p for p in result.problems)


@pytest.mark.django_db
def test_bulk_entries_keep_who_and_from_where_and_verify(users):
    token = audit.set_context(audit.RequestContext(user=users["manager"], ip="10.1.2.3"))
    try:
        audit.record_many(
            AuditEntry.Action.UPDATE,
            [(("customers.institution", str(i), f"客户{i}"), {"tier": ["new", "vip"]}) for i in range(1, 4)],
            run=7,
        )
    finally:
        audit.reset_context(token)
    entries = list(AuditEntry.objects.filter(object_type="customers.institution").order_by("seq"))
    assert [(e.actor_id, e.actor_name, e.ip, e.object_repr) for e in entries] == [
        (users["manager"].pk, "manager", "10.1.2.3", f"客户{i}") for i in range(1, 4)
    ]
    assert len({e.request_id for e in entries}) == 1 and entries[0].extra == {"run": 7}
    assert audit.verify().ok


@pytest.mark.django_db
def test_bulk_entries_record_the_change_they_are_written_with_in_one_transaction(db):
    """record_many(during=…): the change runs under the locked head while the entries are hashed; a change
    that fails leaves neither the change nor any entry."""
    from pharmacrm.core.models import AuditChainHead

    audit.record(AuditEntry.Action.UPDATE, ("customers.institution", "1", "a"), changes={"tier": ["new", "vip"]})
    head = AuditChainHead.objects.get(pk=1)
    seen = []

    def change() -> None:
        seen.append((connection.in_atomic_block, AuditEntry.objects.count()))

    written = audit.record_many(
        AuditEntry.Action.UPDATE,
        [(("customers.institution", str(i), f"客户{i}"), {"tier": ["new", "regular"]}) for i in range(2, 500)],
        reason="evaluation", during=change,
    )  # fmt: skip
    assert written == 498 and seen == [(True, 1)]  # inside the transaction, before the entries went in
    assert AuditChainHead.objects.get(pk=1).seq == head.seq + 498 and audit.verify().ok

    def failing() -> None:
        AuditEntry.objects.filter(seq=0).exists()
        raise DatabaseError("the update was refused")

    before = AuditEntry.objects.count()
    with pytest.raises(DatabaseError), transaction.atomic():
        audit.record_many(AuditEntry.Action.UPDATE, [(("customers.institution", "7", "x"), {"tier": ["a", "b"]})],
                          during=failing)  # fmt: skip
    assert AuditEntry.objects.count() == before and AuditChainHead.objects.get(pk=1).seq == head.seq + 498
    # nothing to record: the change still runs
    assert audit.record_many(AuditEntry.Action.UPDATE, [], during=change) == 0 and len(seen) == 2


@pytest.mark.postgresql
def test_two_first_entries_at_once_both_go_into_the_chain():
    """On a database without the chain's head yet (one emptied since `migrate`), the first entry creates it.
    Two first entries at once both found none; the second failed on the duplicate head, and the change it
    recorded with it. Now it waits for the first, then chains after it."""
    from pharmacrm.core.models import AuditChainHead

    AuditChainHead.objects.all().delete()
    assert not AuditEntry.objects.exists()
    holding, release, failed = threading.Event(), threading.Event(), []

    def entry(n: int) -> None:
        audit.record(
            AuditEntry.Action.UPDATE, ("customers.institution", str(n), f"第{n}人民医院"), actor_name="web"
        )

    def first() -> None:  # a request whose transaction is still open after its entry
        try:
            with transaction.atomic():
                entry(1)
                holding.set()
                assert release.wait(60)
        except Exception as e:
            failed.append(e)
        finally:
            holding.set()
            connections.close_all()

    def second() -> None:
        try:
            entry(2)
        except Exception as e:
            failed.append(e)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert holding.wait(60) and not failed
    threads[1].start()
    deadline = time.monotonic() + 60
    while True:  # until the second entry waits for the first one's transaction
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE NOT l.granted AND a.datname = current_database()"
            )
            if cur.fetchone()[0]:
                break
        assert time.monotonic() < deadline, "the second entry never waited for the first"
        time.sleep(0.05)
    release.set()
    for t in threads:
        t.join()

    assert failed == []
    assert sorted(AuditEntry.objects.values_list("object_id", "seq")) == [("1", 1), ("2", 2)]
    assert audit.verify().ok


@pytest.mark.parametrize(
    "fixed, varying",
    [
        ({"action": "update", "actor": None, "actor_name": "", "at": "2026-12-07T20:00:00.123456+00:00",
          "extra": {}, "request_id": "", "ip": None},
         (1, "customers.institution", "7", "北京协和医院", {"tier": ["new", "vip"]})),
        ({"action": "create", "actor": 12, "actor_name": "张三 \"kam\"", "at": "2026-01-01T00:00:00+00:00",
          "extra": {"run": 7, "reason": "evaluation", "period": "2026H2", "z": [1, {"b": 2, "a": "\u2028\x1f"}]},
          "request_id": "abc-123", "ip": "10.1.2.3"},
         (2**40, "servicedesk.improvementaction", "", "IA-2026-0001 改善 \\ \n 关系 [2026H2]",
          {"owner": [None, 5], "due_date": [None, "2026-12-28"], "Z": {"y": 1.5, "x": None}})),
    ],
)
def test_a_batch_entry_hashes_exactly_as_a_single_entry_would(fixed, varying):
    """record_many serialises the fields a batch shares once: the digest must stay the one `verify` recomputes from
    each entry's fields (the same json.dumps body), whatever the values — quotes, control characters, non-ASCII,
    nested and unsorted keys, None."""
    seq, object_type, object_id, object_repr, changes = varying
    digest = audit._batch_digester(fixed)("f" * 64, seq, object_type, object_id, object_repr, changes)
    fields = {**fixed, "seq": seq, "object_type": object_type, "object_id": object_id, "object_repr": object_repr,
              "changes": changes}  # fmt: skip
    assert digest == audit._digest_fields("f" * 64, fields)


def test_a_batch_digester_refuses_a_changed_set_of_fields():
    with pytest.raises(ValueError):
        audit._batch_digester({"action": "update"})
