"""Personal data is encrypted at rest: the raw database (SQLite file / PostgreSQL dump) never holds it in clear."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from django.db import connection

from pharmacrm.core import backup, crypto
from pharmacrm.customers import search, services
from pharmacrm.customers.models import Person

pytestmark = pytest.mark.django_db(transaction=True)

MOBILE = "13912345678"
LANDLINE = "02164370045"
EMAIL = "li.secret-doctor@example.org"
BIRTHDAY = datetime.date(1968, 7, 23)
ADDRESS = "上海市徐汇区宛平南路600号"


def id_card(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body17 + "10X98765432"[sum(int(c) * w for c, w in zip(body17, weights, strict=True)) % 11]


ID_NUMBER = id_card("31010419680723004")

FORBIDDEN = [
    MOBILE, "139 1234 5678", "139-1234-5678", LANDLINE, "021-64370045", "64370045",
    EMAIL, EMAIL.upper(), "li.secret-doctor", BIRTHDAY.isoformat(), ADDRESS, "宛平南路600号", ID_NUMBER,
]  # fmt: skip


@pytest.fixture
def secret_person(admin_user, ruijin):
    return services.create_person(
        admin_user,
        {
            "name": "李秘密", "institution": ruijin, "title": "主任医师", "mobile": MOBILE, "landline": LANDLINE,
            "email": EMAIL, "birthday": BIRTHDAY, "home_address": ADDRESS, "id_number": ID_NUMBER,
        },
    )  # fmt: skip


def raw_database_bytes(tmp_path: Path) -> bytes:
    """Everything the database keeps on disk: the SQLite file and its WAL, or a full PostgreSQL dump."""
    if connection.vendor == "postgresql":
        args, env, name = backup.pg_connection()
        dump = subprocess.run(
            [backup.pg_tool("pg_dump"), "--format=plain", "--inserts", *args, name],
            env=env, capture_output=True, check=True,
        )  # fmt: skip
        assert b"core_auditentry" in dump.stdout  # it really is the whole database
        return dump.stdout
    assert connection.vendor == "sqlite"
    name = connection.settings_dict["NAME"]
    connection.ensure_connection()
    if "mode=memory" in str(name) or str(name) == ":memory:":
        # the test database lives in memory: serialize() gives the exact bytes a database file would hold
        image = connection.connection.serialize()
        assert image.startswith(b"SQLite format 3\x00")
        return image
    with connection.cursor() as cur:
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = Path(name).read_bytes()
    wal = Path(f"{name}-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def test_no_personal_value_is_stored_in_clear_but_the_person_is_found_by_phone(
    secret_person, users, tmp_path
):
    data = raw_database_bytes(tmp_path)
    assert "李秘密".encode() in data  # names are not personal contact data: they are searchable
    for value in FORBIDDEN:
        assert value.encode() not in data, f"{value!r} is stored in clear"
    assert f"{crypto.PREFIX}:{crypto.keyring().active}:".encode() in data

    found = Person.objects.get(mobile_bidx=crypto.blind_index(MOBILE, "phone"))
    assert found == secret_person and found.mobile == MOBILE and found.email == EMAIL
    assert [h.obj for h in search.search(users["agent"], "139-1234-5678")] == [secret_person]
    assert [h.obj for h in search.search(users["agent"], "021 6437 0045")] == [secret_person]
    assert [h.obj for h in search.search(users["agent"], EMAIL.upper())] == [secret_person]


def test_the_audit_trail_records_that_personal_fields_changed_without_their_values(
    secret_person, admin_user, tmp_path
):
    services.update_person(admin_user, secret_person, {"mobile": "13700001111"})
    data = raw_database_bytes(tmp_path)
    assert b"13700001111" not in data and MOBILE.encode() not in data


def test_nonces_never_repeat_within_a_process_or_across_a_fork():
    """GCM breaks if a nonce is used twice with one key: nonces come from the OS in blocks, and a forked
    child (a pool worker, a gunicorn worker) must draw its own instead of reusing the parent's block."""
    import base64
    import os

    from pharmacrm.core import crypto

    def nonce(token: str) -> bytes:
        return base64.b64decode(token.split(":", 2)[2])[:12]

    crypto.encrypt("warm-up", "t.c")  # the parent now holds a part-used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first nonces and leave at once
        os.close(read)
        os.write(write, b"".join(nonce(crypto.encrypt("x", "t.c")) for _ in range(50)))
        os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 4096):
        child += chunk
    os.waitpid(pid, 0)
    parent = [nonce(crypto.encrypt("x", "t.c")) for _ in range(10_000)]  # crosses a block boundary
    child_nonces = [child[i : i + 12] for i in range(0, len(child), 12)]
    assert len(child_nonces) == 50
    assert len(set(parent)) == len(parent)
    assert not set(parent) & set(child_nonces)
    assert crypto.decrypt(crypto.encrypt("13800138000", "t.c"), "t.c") == "13800138000"


def test_processes_starting_at_once_on_a_new_installation_share_one_key_ring(tmp_path, settings, monkeypatch):
    """On a new installation each process starting at once (web workers, the worker) created var/keyring.json
    when it found none: the ring written last replaced the one another process had already read, which then
    encrypted with keys no file held (unreadable after its restart). A process that finds the file made in the
    meantime uses the ring in it."""
    original = crypto.keyring()
    monkeypatch.delenv("PHARMACRM_KEYRING_FILE", raising=False)
    monkeypatch.delenv("PHARMACRM_KEYRING", raising=False)
    path = tmp_path / "var" / "keyring.json"
    settings.PHARMACRM_KEYRING_PATH = path
    theirs, generate = crypto.KeyRing.generate(), crypto.KeyRing.generate

    def while_another_process_writes_its_ring(cls):
        path.write_text(theirs.to_json())  # between this process's look for the file and its write
        return generate()

    monkeypatch.setattr(crypto.KeyRing, "generate", classmethod(while_another_process_writes_its_ring))
    crypto._reload()
    try:
        assert crypto.keyring() == theirs
        assert crypto.KeyRing.from_json(path.read_text()) == theirs
        assert [p.name for p in path.parent.iterdir()] == ["keyring.json"]
    finally:
        crypto.install_keyring(original, persist=False)
