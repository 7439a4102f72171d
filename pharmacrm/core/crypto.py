"""Personal-data encryption at rest: an AES-GCM key ring with rotation and an HMAC blind index."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from pharmacrm.core.privatefile import create_once

PREFIX = "e1"  # ciphertext format: e1:<key id>:<base64(nonce | ciphertext | tag)>


class KeyRingInvalid(ImproperlyConfigured):
    """The key ring cannot be read: a missing file, damaged JSON, a wrong key. The message says which, in the
    product's language, so that an operations command prints it instead of a traceback."""


@dataclass(frozen=True)
class KeyRing:
    """The encryption keys by id, the one used for new ciphertexts, and the blind-index key."""

    active: str
    keys: dict[str, bytes]
    index_key: bytes

    def to_json(self) -> str:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return json.dumps(
            {"active": self.active, "keys": {k: b64(v) for k, v in self.keys.items()}, "index_key": b64(self.index_key)},
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        try:
            data = json.loads(text)
        except ValueError:
            raise KeyRingInvalid(_("The key ring is not valid JSON (is the file damaged or empty?).")) from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict) or not data["keys"]:
            raise KeyRingInvalid(
                _("The key ring must be a JSON object with “active”, “keys” and “index_key”; “keys” is missing or empty.")
            )
        try:
            keys = {k: base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            index_key = base64.b64decode(data.get("index_key") or "", validate=True)
        except (TypeError, ValueError):
            raise KeyRingInvalid(_("A key in the key ring is not valid base64.")) from None
        if data.get("active") not in keys:
            raise KeyRingInvalid(
                _("The key ring's active key %(key)s is not among its keys.") % {"key": data.get("active")}
            )
        if any(len(k) != 32 for k in keys.values()):
            raise KeyRingInvalid(_("Every key in the key ring must be 32 bytes (AES-256)."))
        if len(index_key) != 32:
            raise KeyRingInvalid(_("The key ring's blind-index key (index_key) is missing or not 32 bytes."))
        return cls(active=data["active"], keys=keys, index_key=index_key)

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(active="k1", keys={"k1": AESGCM.generate_key(256)}, index_key=secrets.token_bytes(32))

    def with_new_key(self) -> KeyRing:
        """A ring with one more key, made the active one; old keys stay to decrypt old data."""
        n = 1 + max(int(k[1:]) for k in self.keys if k[1:].isdecimal())
        new_id = f"k{n}"
        return KeyRing(active=new_id, keys={**self.keys, new_id: AESGCM.generate_key(256)}, index_key=self.index_key)


_lock = threading.Lock()
_ring: KeyRing | None = None
_aead: dict[str, AESGCM] = {}
# A running process (web server, worker) notices a key ring changed in its file — `rotate-keys` in another process,
# a restore with --with-keyring — within RECHECK_SECONDS and loads it: it used to keep writing with the old active
# key until restarted, and once `--prune` had dropped that key, what it wrote could no longer be read by any other
# process, nor by itself after a restart.
RECHECK_SECONDS = 1.0
_source: tuple | None = None  # (path, mtime, size, inode) of the file the ring was read from; None: not known
_checked_at = 0.0
log = logging.getLogger(__name__)


def _source_path() -> Path | None:
    """The file the key ring is read from; None when it comes from the PHARMACRM_KEYRING variable."""
    if "PHARMACRM_KEYRING_FILE" in os.environ:
        return Path(os.environ["PHARMACRM_KEYRING_FILE"])
    if os.environ.get("PHARMACRM_KEYRING"):
        return None
    return Path(settings.PHARMACRM_KEYRING_PATH)


def _signature(path: Path | None) -> tuple | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)


def _write_ring(path: Path, ring: KeyRing) -> None:
    """Replace the ring file at once, durably: the new ring is on disk before it takes the old one's name, and the
    new name is on disk before anything is encrypted under the new key. Without the syncs a power cut right after a
    rotation could leave an empty ring file, and the values already re-encrypted unreadable."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _create_ring_file(path: Path, ring: KeyRing) -> None:
    """Write `ring` to `path` unless a ring is there already (another process starting at the same moment on a
    new installation): every process then uses the one ring in the file."""
    create_once(path, ring.to_json())


def _read_ring_file(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise KeyRingInvalid(
            _("The key ring %(path)s cannot be read: %(error)s") % {"path": path, "error": e.strerror or e}
        ) from None


def _parse(text: str, source: str) -> KeyRing:
    """The ring in `text`; a damaged one is refused naming where it came from."""
    try:
        return KeyRing.from_json(text)
    except KeyRingInvalid as e:
        raise KeyRingInvalid(_("Key ring %(source)s: %(problem)s") % {"source": source, "problem": e}) from None


def keyring() -> KeyRing:
    """The key ring: from PHARMACRM_KEYRING(_FILE), else var/keyring.json (created on first use); loaded again when
    its file has changed (checked at most every RECHECK_SECONDS)."""
    global _ring, _source, _checked_at
    ring = _ring
    if ring is not None:
        if time.monotonic() - _checked_at < RECHECK_SECONDS:
            return ring
        return _recheck()
    with _lock:
        if _ring is None:
            signature = _signature(_source_path())  # before reading: a change while it is read is seen next time
            text = os.environ.get("PHARMACRM_KEYRING")
            source = "PHARMACRM_KEYRING"
            if "PHARMACRM_KEYRING_FILE" in os.environ:
                source = os.environ["PHARMACRM_KEYRING_FILE"]
                text = _read_ring_file(Path(source))
            if text or "PHARMACRM_KEYRING_FILE" in os.environ:  # an empty secret file is refused, not replaced
                ring = _parse(text, source)
            else:
                path = Path(settings.PHARMACRM_KEYRING_PATH)
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _create_ring_file(path, KeyRing.generate())
                ring = _parse(_read_ring_file(path), str(path))
            _ring = ring
            _aead.clear()
            _source, _checked_at = signature, time.monotonic()
    return _ring


def _recheck() -> KeyRing:
    """The ring in use, after loading it again if its file changed since it was read. A file that cannot be used
    now (half-written by hand, a secret mount gone) leaves the process with the ring it had, and says so in the log."""
    global _ring, _source, _checked_at
    with _lock:
        ring = _ring
        if ring is not None and time.monotonic() - _checked_at >= RECHECK_SECONDS:
            _checked_at = time.monotonic()
            path = _source_path()
            signature = _signature(path)
            if signature is not None and signature != _source:
                try:
                    ring = _parse(_read_ring_file(path), str(path))
                except KeyRingInvalid as e:
                    log.error("The key ring %s changed and cannot be used; this process keeps its ring: %s", path, e)
                    ring = _ring
                if ring != _ring:
                    _ring = ring
                    _aead.clear()
                _source = signature  # a damaged file is said once, not every second: tried again when it changes
    return ring if ring is not None else keyring()  # None: dropped meanwhile by another thread (_reload)


def install_keyring(ring: KeyRing, persist: bool = True) -> None:
    """Make `ring` the process's key ring (and save it to the key file when it came from there). A ring installed
    without saving it is compared with its file at the next check, as one read from it would be."""
    global _ring, _source, _checked_at
    with _lock:
        if persist:
            path = Path(settings.PHARMACRM_KEYRING_PATH)
            _write_ring(path, ring)
            _source = _signature(path)
        else:
            _source = None
        _ring = ring
        _aead.clear()
        _checked_at = time.monotonic()


def _reload() -> None:
    global _ring, _source
    with _lock:
        _ring = None
        _source = None
        _aead.clear()


def reloaded_keyring() -> KeyRing:
    """The key ring as its source holds it now: another process (`rotate-keys`) may have added a key since this
    one loaded it. Raises KeyRingInvalid when the source cannot be used (the process keeps the ring it had)."""
    global _ring
    previous = _ring
    _reload()
    try:
        return keyring()
    except KeyRingInvalid:
        with _lock:
            if _ring is None:
                _ring = previous
        raise


def _cipher(key_id: str) -> AESGCM:
    aead = _aead.get(key_id)
    if aead is None:
        ring = keyring()
        if key_id not in ring.keys:
            _reload()  # another process may have rotated the keys since this one loaded the ring
            ring = keyring()
        if key_id not in ring.keys:
            raise ImproperlyConfigured(f"Key {key_id!r} is not in the key ring; data encrypted with it cannot be read.")
        aead = _aead[key_id] = AESGCM(ring.keys[key_id])
    return aead


class _NoncePool(threading.local):
    """Random 96-bit GCM nonces drawn from the OS in blocks: one getrandom() call per 4,096 nonces instead
    of one per field (it was a quarter of the encryption time of an import). Per thread, and dropped in
    a forked child, so that two processes never hand out the same nonces."""

    BLOCK = 4096

    def __init__(self):
        self.buf, self.pos = b"", 0

    def take(self) -> bytes:
        pos = self.pos
        if pos >= len(self.buf):
            self.buf, pos = os.urandom(12 * self.BLOCK), 0
        self.pos = pos + 12
        return self.buf[pos : pos + 12]


_nonces = _NoncePool()


def _fresh_nonces_after_fork() -> None:
    global _nonces
    _nonces = _NoncePool()


os.register_at_fork(after_in_child=_fresh_nonces_after_fork)


def encrypt(plaintext: str, context: str) -> str:
    """Ciphertext for `plaintext`, bound to `context` (table.column) so it cannot be moved elsewhere."""
    ring = keyring()
    nonce = _nonces.take()
    ct = _cipher(ring.active).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{PREFIX}:{ring.active}:{base64.b64encode(nonce + ct).decode()}"


def decrypt(token: str, context: str) -> str:
    _, key_id, body = token.split(":", 2)
    raw = base64.b64decode(body)
    return _cipher(key_id).decrypt(raw[:12], raw[12:], context.encode()).decode()


def key_id_of(token: str) -> str | None:
    return token.split(":", 2)[1] if token and token.startswith(PREFIX + ":") else None


def blind_index(normalised: str, purpose: str) -> str:
    """A keyed hash of a normalised value for exact look-ups; reveals nothing without the index key."""
    if not normalised:
        return ""
    mac = _index_mac().copy()  # the keyed inner/outer state, computed once per key
    mac.update(f"{purpose}\x00{normalised}".encode())
    return mac.hexdigest()[:32]


_index_state: tuple[bytes, object] | None = None


def _index_mac():
    global _index_state
    key = keyring().index_key
    if _index_state is None or _index_state[0] is not key:  # a new ring brings a new key object
        _index_state = (key, hmac.new(key, digestmod=hashlib.sha256))
    return _index_state[1]
