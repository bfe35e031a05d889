"""The account export file: a member data directory, zipped and sealed under a passphrase.

Theory of operation
-------------------
The phone keeps its account in the browser (IndexedDB), which the browser may evict and which
dies with the phone; the export file is the person's copy. Layout (all lengths fixed):

    MAGIC (8 bytes, b"WSACCT01") | salt (16) | nonce (24) | secretbox(key, nonce, zip)

`key` is 32 bytes of Argon2id (libsodium crypto_pwhash, ALG_ARGON2ID13, the INTERACTIVE limits:
a phone must be able to afford it) over the passphrase and salt; the caller passes that
function in (`kdf`), since Python's own hashlib has no memory-hard KDF in Pyodide. The zip holds
every file of the data directory (member.sqlite3, the store, ...) with paths relative to it.
Import refuses a file that does not open (wrong passphrase or damaged: one error for both) and
a zip whose paths leave the directory.
"""

import io
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from node.crypto.api import Suite
from node.errors import IntegrityError, NodeError
from waystation_web.ffi import to_js

MAGIC = b"WSACCT01"
SALT_BYTES = 16
NONCE_BYTES = 24
KEY_BYTES = 32
MAX_EXPORT_BYTES = 512 * 1024 * 1024

Kdf = Callable[[bytes, bytes], bytes]  # (passphrase, salt) -> 32-byte key


def js_kdf(bridge: Any) -> Kdf:
    """The Kdf of the page: Argon2id (INTERACTIVE) in libsodium.js (web/src/sodium_bridge.mjs).

    Byte-compatible with PyNaCl's ``nacl.pwhash.argon2id.kdf(32, passphrase, salt,
    opslimit=OPSLIMIT_INTERACTIVE, memlimit=MEMLIMIT_INTERACTIVE)``.
    """

    def kdf(passphrase: bytes, salt: bytes) -> bytes:
        return bytes(bridge.argon2id_interactive(to_js(passphrase), to_js(salt)).to_bytes())

    return kdf


def seal_dir(suite: Suite, kdf: Kdf, data_dir: Path, passphrase: str) -> bytes:
    """The export file of `data_dir` (closed: nothing may write to it meanwhile)."""
    if not passphrase:
        raise NodeError("an export needs a passphrase")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(data_dir.rglob("*")):
            if path.is_file():
                archive.writestr(path.relative_to(data_dir).as_posix(), path.read_bytes())
    salt = suite.random_bytes(SALT_BYTES)
    nonce = suite.random_bytes(NONCE_BYTES)
    key = bytes(kdf(passphrase.encode("utf-8"), salt))
    return MAGIC + salt + nonce + suite.secretbox_seal(key, nonce, buffer.getvalue())


def open_into(suite: Suite, kdf: Kdf, sealed: bytes, passphrase: str, data_dir: Path) -> None:
    """Unpack an export file into `data_dir` (which must hold no account).

    Raises:
        NodeError: not an export file, wrong passphrase or damaged, or unsafe paths inside.
    """
    head = len(MAGIC) + SALT_BYTES + NONCE_BYTES
    if len(sealed) <= head or sealed[: len(MAGIC)] != MAGIC or len(sealed) > MAX_EXPORT_BYTES:
        raise NodeError("this is not a Waystation account file")
    salt = sealed[len(MAGIC) : len(MAGIC) + SALT_BYTES]
    nonce = sealed[len(MAGIC) + SALT_BYTES : head]
    key = bytes(kdf(passphrase.encode("utf-8"), salt))
    try:
        plain = suite.secretbox_open(key, nonce, sealed[head:])
    except IntegrityError:
        raise NodeError("wrong passphrase, or the file is damaged") from None
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:
        names = archive.namelist()
        for name in names:
            parts = PurePosixPath(name).parts
            if not parts or name.startswith("/") or ".." in parts or "\\" in name:
                raise NodeError("unsafe path in the account file: %r" % name)
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = data_dir.joinpath(*PurePosixPath(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
