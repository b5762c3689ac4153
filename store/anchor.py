"""The audit trail's anchor outside the database: a signing key and a file of signed checkpoints.

A hash chain alone proves nothing to someone who can write the database: they
can edit a record and recompute every hash after it. So records are signed
(HMAC-SHA256) with a key that is **not** in the database, and the chain head
is periodically written, signed, to a checkpoint file that operators can copy
elsewhere (a log shipper, another host, write-once storage).

Where they live (see docs/evidence.md, "What verify proves"):

* the key: ``$AGENTDECK_AUDIT_KEY``, else ``audit.key`` beside the store file.
  Created on first use with mode 0600 (32 random bytes, hex). Keep it away from
  whoever can write the store — e.g. point the variable at a file owned by the
  console's user only; whoever holds both the store and the key can forge.
* the checkpoints: ``$AGENTDECK_AUDIT_CHECKPOINTS``, else
  ``audit-checkpoints.log`` beside the store file (``var/``, next to the
  traces). One JSON line per checkpoint, appended after every audited act.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
import threading
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

from agentdeck.store.txn import StoreError

ENV_KEY = "AGENTDECK_AUDIT_KEY"
ENV_CHECKPOINTS = "AGENTDECK_AUDIT_CHECKPOINTS"
KEY_NAME = "audit.key"
CHECKPOINTS_NAME = "audit-checkpoints.log"
_lock = threading.Lock()
_cache: dict[str, Key] = {}


class AnchorError(StoreError):
    """The audit key cannot be used; the message says why and what to do.

    A ``StoreError`` (so a ``sqlite3.Error``): an audited write that cannot be signed fails like any store
    write the operator must fix, and the screens that report store errors report this one too.
    """

    what = "the audit key cannot be used"

    def __init__(self, message: str) -> None:
        self.detail, self.path = message, None
        sqlite3.OperationalError.__init__(self, message)


@dataclass(frozen=True)
class Key:
    secret: bytes
    path: Path

    @property
    def key_id(self) -> str:
        """A short public name for the key (to tell "signed with another key" from "edited")."""
        return hashlib.sha256(b"agentdeck-audit-key-id\x00" + self.secret).hexdigest()[:12]

    def sign(self, purpose: str, message: str) -> str:
        return hmac.new(self.secret, f"{purpose}\x00{message}".encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()

    def check(self, purpose: str, message: str, mac: str) -> bool:
        return hmac.compare_digest(self.sign(purpose, message), mac)

    @property
    def loosely_readable(self) -> bool:
        try:
            return bool(self.path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
        except OSError:
            return False


def key_path(store: str | Path | None, cli: str | None = None) -> Path | None:
    """Where the key is: the command line, $AGENTDECK_AUDIT_KEY, else beside the store (None: in-memory store)."""
    if cli:
        return Path(cli)
    if os.environ.get(ENV_KEY):
        return Path(os.environ[ENV_KEY])
    return Path(store).parent / KEY_NAME if store else None


def checkpoints_path(store: str | Path | None, cli: str | None = None) -> Path | None:
    if cli:
        return Path(cli)
    if os.environ.get(ENV_CHECKPOINTS):
        return Path(os.environ[ENV_CHECKPOINTS])
    return Path(store).parent / CHECKPOINTS_NAME if store else None


def _read(path: Path) -> Key:
    try:
        text = path.read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AnchorError(f"cannot read the audit key {path}: {exc}; restore it from your copy") from None
    if len(secret) < 16:
        raise AnchorError(f"the audit key {path} is too short ({len(secret)} bytes); restore it from your copy")
    return Key(secret, path)


def load_key(path: Path | None) -> Key | None:
    """The key at ``path`` (None if there is none). Never creates one: checking must not invent a key."""
    if path is None or not path.exists():
        return None
    cached = _cache.get(str(path))
    if cached is not None:
        return cached
    key = _read(path)
    _cache[str(path)] = key
    return key


def key_for_writing(path: Path | None) -> Key | None:
    """The key at ``path``, created (0600, atomically: two processes agree on one key) if there is none yet."""
    if path is None:
        return None
    key = load_key(path)
    if key is not None:
        return key
    try:
        _create(path)
    except OSError as exc:
        raise AnchorError(f"cannot create the audit key {path}: {exc.strerror or exc}; make its folder writable "
                          f"or point ${ENV_KEY} at a writable place") from None
    return load_key(path)


def _create(path: Path) -> None:
    with _lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # fails if another process made one meanwhile: theirs wins
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)


# ---- checkpoints ----------------------------------------------------------------------------


def _checkpoint_message(rec_id: int, rec_hash: str, at: str) -> str:
    return f"{rec_id}\x00{rec_hash}\x00{at}"


def append_checkpoint(path: Path, key: Key, rec_id: int, rec_hash: str, now: float) -> None:
    """Append one signed checkpoint line (a single write on an O_APPEND file: lines never interleave)."""
    at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = json.dumps({"id": rec_id, "hash": rec_hash, "at": at, "key_id": key.key_id,
                       "mac": key.sign("checkpoint", _checkpoint_message(rec_id, rec_hash, at))},
                      separators=(",", ":")) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Checkpoint:
    line: int
    id: int
    hash: str
    at: str
    key_id: str
    mac: str

    def signed_by(self, key: Key) -> bool:
        return key.check("checkpoint", _checkpoint_message(self.id, self.hash, self.at), self.mac)


def read_checkpoints(path: Path) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint in the file, and the lines that are not one (each a problem: the file is append-only)."""
    found: list[Checkpoint] = []
    bad: list[str] = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                d = json.loads(raw)
                cp = Checkpoint(n, int(d["id"]), str(d["hash"]), str(d["at"]), str(d["key_id"]), str(d["mac"]))
            except (ValueError, KeyError, TypeError):
                if not raw.endswith(b"\n") and n > 0:
                    bad.append(f"line {n} is cut short (a write was interrupted, or the file was edited)")
                else:
                    bad.append(f"line {n} is not a checkpoint (edited)")
                continue
            found.append(cp)
    return found, bad
