"""Real local mail servers for the e-mail tests: a Dovecot IMAP server and an aiosmtpd SMTP server that
delivers every mail it accepts into the recipient's Dovecot mailbox (IMAP APPEND), so mail flows as it
does on a real system: the application sends by SMTP and reads the service mailbox by IMAP.

Use them in a test module with

    from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401

Both servers run once per pytest worker (session scope) on free localhost ports, so xdist workers never
collide. Dovecot runs without root: as the current user, or as `nobody` when the tests run as root (it
refuses to hand out mailboxes to uid 0). A missing Dovecot skips the tests locally, which CI=true turns
into a failure (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import email
import email.policy
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
PASSWORD = "mail-test-secret"
SERVICE = "service@pharmacrm.test"
CUSTOMER = "customer@hospital.test"
STRANGER = "stranger@elsewhere.test"
DOCTOR = "zhangwei@example.com"  # the doctor of the `xiehe` fixture (tests/conftest.py)
USERS = (SERVICE, CUSTOMER, STRANGER, DOCTOR, "other@hospital.test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen | None, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@dataclasses.dataclass
class ImapServer:
    host: str
    port: int
    password: str
    root: Path

    def connect(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        imap.login(user, self.password)
        return imap

    def append(self, user: str, raw: bytes, flags: str = "", when=None) -> None:
        """Put a mail in the user's INBOX; `when` (an aware datetime): when the mailbox received it (INTERNALDATE),
        else now."""
        imap = self.connect(user)
        try:
            typ, data = imap.append("INBOX", flags or None, imaplib.Time2Internaldate(when) if when else None, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND for {user} failed: {data!r}")
        finally:
            imap.logout()

    def messages(self, user: str) -> list[email.message.EmailMessage]:
        """Every mail in the user's INBOX, oldest first, parsed (reading does not mark them seen)."""
        imap = self.connect(user)
        try:
            imap.select("INBOX")
            _typ, data = imap.uid("SEARCH", None, "ALL")
            out = []
            for uid in data[0].split():
                _typ, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next(p[1] for p in parts if isinstance(p, tuple))
                out.append(email.message_from_bytes(raw, policy=email.policy.default))
            return out
        finally:
            imap.logout()

    def flags(self, user: str) -> list[str]:
        """The flags of each mail in the user's INBOX, oldest first (e.g. ['\\Seen'])."""
        imap = self.connect(user)
        try:
            imap.select("INBOX", readonly=True)
            _typ, data = imap.uid("SEARCH", None, "ALL")
            out = []
            for uid in data[0].split():
                _typ, parts = imap.uid("FETCH", uid, "(FLAGS)")
                out.append(parts[0].decode())
            return out
        finally:
            imap.logout()

    def empty(self, *users: str) -> None:
        for user in users or USERS:
            imap = self.connect(user)
            try:
                _typ, data = imap.select("INBOX")
                if int(data[0] or 0):
                    imap.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                    imap.expunge()
            finally:
                imap.logout()


DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = pharmacrm-test-{port}
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  user = {user}
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
service stats {{
  chroot =
}}
service submission-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
"""


def _run_as() -> pwd.struct_passwd:
    """Dovecot as the current user; as `nobody` when that is root."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    return pwd.getpwnam("nobody")


@pytest.fixture(scope="session")
def imap_server():
    if DOVECOT is None:
        pytest.skip(
            "Dovecot is not installed (Debian: apt-get install dovecot-imapd; scripts/system-packages.sh test)"
        )
    account = _run_as()
    group = _group_name(account.pw_gid)
    root = Path(tempfile.mkdtemp(prefix="pharmacrm-imap-"))
    os.chmod(root, 0o755)
    server = None
    proc = None
    for _attempt in range(5):  # another process may take the free port before Dovecot binds it
        port = free_port()
        (root / "dovecot.conf").write_text(
            DOVECOT_CONF.format(
                root=root,
                port=port,
                user=account.pw_name,
                group=group,
                uid=account.pw_uid,
                gid=account.pw_gid,
            )  # fmt: skip
        )
        (root / "passwd").write_text("".join(f"{user}:{{PLAIN}}{PASSWORD}\n" for user in USERS))
        for sub in ("run", "state", "mail", "home"):
            (root / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            for path in [root, *root.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid)
        kwargs = (
            {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if os.geteuid() == 0 else {}
        )
        proc = subprocess.Popen(  # noqa: S603
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=open(root / "stderr.log", "wb"), **kwargs,  # noqa: SIM115
        )  # fmt: skip
        if _wait_for_port(port, proc):
            server = ImapServer("127.0.0.1", port, PASSWORD, root)
            break
        _stop(proc)
    if server is None:
        log = (root / "stderr.log").read_text(errors="replace") + _read(root / "dovecot.log")
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"Dovecot did not start: {log[-2000:]}")
    try:
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()  # the master stops its children on SIGTERM
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class _DeliverToImap:
    """aiosmtpd handler: each accepted mail goes into the Dovecot INBOX of each recipient, with a
    Return-Path and a Received line like a real MTA's local delivery adds."""

    def __init__(self, imap: ImapServer) -> None:
        self.imap = imap
        self.received = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.lower() not in USERS:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address.lower())
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        header = f"Return-Path: <{envelope.mail_from}>\r\nReceived: from {session.host_name} by pharmacrm-test-smtp\r\n"
        try:
            for rcpt in envelope.rcpt_tos:
                self.imap.append(rcpt, header.encode() + data)
        except Exception as exc:  # noqa: BLE001
            return f"451 4.3.0 Delivery failed: {exc}"
        self.received += 1
        return "250 Message accepted for delivery"


@dataclasses.dataclass
class SmtpServer:
    host: str
    port: int
    handler: _DeliverToImap


@pytest.fixture(scope="session")
def smtp_server(imap_server):
    from aiosmtpd.controller import Controller

    handler = _DeliverToImap(imap_server)
    controller = None
    for _attempt in range(5):
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False)
        try:
            controller.start()
            break
        except OSError:  # the port was taken in between
            controller = None
    if controller is None:
        pytest.fail("The test SMTP server did not start")
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


@pytest.fixture
def mail_settings(settings, smtp_server, imap_server):
    """Django's SMTP backend and the service mailbox pointed at the local servers; every mailbox empty."""
    imap_server.empty()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    settings.SERVICEDESK_MAIL_FROM = f"PharmaCRM Service <{SERVICE}>"
    settings.SERVICEDESK_IMAP_HOST = imap_server.host
    settings.SERVICEDESK_IMAP_PORT = imap_server.port
    settings.SERVICEDESK_IMAP_SSL = False
    settings.SERVICEDESK_IMAP_USER = SERVICE
    settings.SERVICEDESK_IMAP_PASSWORD = imap_server.password
    settings.SERVICEDESK_IMAP_FOLDER = "INBOX"
    return settings


class _Keep:
    """aiosmtpd handler that keeps every envelope it accepts (for recipients no Dovecot mailbox has)."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def _keeping_server(smtputf8: bool):
    from aiosmtpd.controller import Controller

    handler = _Keep()
    for _attempt in range(5):
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False, enable_SMTPUTF8=smtputf8)
        try:
            controller.start()
            return controller, SmtpServer("127.0.0.1", port, handler)
        except OSError:  # the port was taken in between
            continue
    pytest.fail("A test SMTP server did not start")


@pytest.fixture(scope="session")
def smtputf8_server():
    """An SMTP server that offers SMTPUTF8 (RFC 6531), as aiosmtpd does by default and Postfix with
    smtputf8_enable: it accepts mail for an address such as 张三@公司.cn and keeps the envelopes
    (`.handler.envelopes`)."""
    controller, server = _keeping_server(True)
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def ascii_smtp_server():
    """An SMTP server that does not offer SMTPUTF8, as many company mail servers still do not."""
    controller, server = _keeping_server(False)
    try:
        yield server
    finally:
        controller.stop()
