"""Member files on disk: JSON with bytes, written atomically with owner-only permissions.

Theory of operation. Every member file (account keys, one file per group) holds secrets, so it is
created with mode 0600 inside a directory of mode 0700 and replaced atomically: the new content is
written to a temporary file in the same directory, flushed and fsync'ed, renamed over the old file,
and the directory is fsync'ed so the rename itself survives a power cut. A reader therefore sees
either the old file or the new one, never a mix.

JSON has no bytes type: a bytes value is written as the one-key object {"$b": "<hex>"}; every
other value must be JSON-native (dict with str keys, list, str, int, bool, None). Tuples are
written as lists.
"""

import json
import os
from pathlib import Path
from typing import Any

from node.member.errors import MemberError

BYTES_TAG = "$b"
FILE_MODE = 0o600
DIR_MODE = 0o700


def to_json_value(value: Any) -> Any:
    """`value` with every bytes replaced by {"$b": hex} (recursively)."""
    if isinstance(value, bytes | bytearray):
        return {BYTES_TAG: bytes(value).hex()}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("member files need str keys, got %r" % (key,))
            out[key] = to_json_value(item)
        return out
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return value


def from_json_value(value: Any) -> Any:
    """Inverse of to_json_value.

    Raises:
        ValueError: a {"$b": ...} object whose value is not a hex string.
    """
    if isinstance(value, dict):
        if len(value) == 1 and BYTES_TAG in value:
            text = value[BYTES_TAG]
            if not isinstance(text, str):
                raise ValueError("%s holds %s, not hex text" % (BYTES_TAG, type(text).__name__))
            return bytes.fromhex(text)
        return {key: from_json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json_value(item) for item in value]
    return value


def json_depth_error(text: str, limit: int) -> str | None:
    """Why `text` cannot be parsed safely: arrays/objects nested deeper than `limit`, else None.

    json.loads recurses once per level and raises RecursionError near 1,000 levels; this scan
    is iterative and runs before it (strings are skipped, escapes included).
    """
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return "nested deeper than %d levels" % limit
        elif ch in "]}":
            depth -= 1
    return None


MAX_FILE_DEPTH = 32


def parse_json(text: str, source: str) -> Any:
    """The value of a member JSON text (bytes decoded), checked before parsing.

    Raises:
        MemberError: naming `source`: not JSON, nested too deeply, or a malformed bytes value.
    """
    problem = json_depth_error(text, MAX_FILE_DEPTH)
    if problem is not None:
        raise MemberError("%s is damaged: JSON %s" % (source, problem))
    try:
        return from_json_value(json.loads(text))
    except (ValueError, RecursionError) as exc:
        raise MemberError("%s is damaged: %s" % (source, exc)) from None


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) if missing; the leaf gets mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)


def write_json(path: Path, value: Any) -> None:
    """Atomically replace `path` with the JSON of `value` (mode 0600).

    Raises:
        MemberError: the file cannot be written.
    """
    data = json.dumps(to_json_value(value), sort_keys=True, indent=1).encode() + b"\n"
    try:
        write_private_file(path, data)
    except OSError as exc:
        raise MemberError("cannot write %s: %s" % (path, exc.strerror or exc)) from exc


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, mode 0600: temporary file, fsync, rename, fsync of
    the directory. Raises OSError (callers translate it)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> Any:
    """The value saved by write_json.

    Raises:
        MemberError: missing, unreadable or not valid JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MemberError("%s does not exist" % path) from None
    except (OSError, UnicodeError) as exc:
        raise MemberError("cannot read %s: %s" % (path, exc)) from exc
    return parse_json(text, str(path))
