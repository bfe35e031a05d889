"""node.lan.discovery without a network: the TXT record and address checks."""

import pytest

from node.lan.discovery import (
    BadRecordError,
    _pick_address,
    encode_txt,
    instance_name,
    parse_txt,
)

TOKEN = bytes.fromhex("0123456789abcdef")


def txt(*items: bytes) -> bytes:
    return b"".join(bytes([len(i)]) + i for i in items)


def test_encode_and_parse_roundtrip() -> None:
    props = encode_txt(TOKEN)
    assert props == {"v": "1", "t": "0123456789abcdef"}
    raw = txt(*(("%s=%s" % kv).encode() for kv in sorted(props.items())))
    assert parse_txt(raw) == TOKEN
    assert instance_name(TOKEN) == "ws-0123456789abcdef"


def test_unknown_keys_and_empty_strings_are_tolerated() -> None:
    assert parse_txt(txt(b"", b"v=1", b"x=y", b"T=0123456789abcdef")) == TOKEN


@pytest.mark.parametrize(
    ("raw", "counter"),
    [
        (txt(b"v=1", b"t=" + b"ab" * 100), "oversize"),
        (txt(*[b"k%d=%s" % (i, b"x" * 40) for i in range(6)]), "oversize"),
        (txt(b"v=1"), "missing"),
        (txt(b"t=0123456789abcdef"), "missing"),
        (b"", "missing"),
        (txt(b"v=2", b"t=0123456789abcdef"), "version"),
        (txt(b"v=1", b"t=zz23456789abcdef"), "garbage"),
        (txt(b"v=1", b"t=\xff\xfe3456789abcdef"), "garbage"),
        (txt(b"v=1", b"t=0123"), "garbage"),
        (txt(b"v=1", b"t=0123456789abcde"), "garbage"),
        (txt(b"v=1", b"v=1", b"t=0123456789abcdef"), "garbage"),
        (txt(b"v=1", b"t"), "garbage"),
        (txt(b"=1"), "garbage"),
        (b"\x10v=1", "garbage"),
    ],
)
def test_hostile_txt(raw: bytes, counter: str) -> None:
    with pytest.raises(BadRecordError) as info:
        parse_txt(raw)
    assert info.value.counter == counter


def test_pick_address() -> None:
    assert _pick_address(["fe80::1%2", "192.168.1.5"]) == "192.168.1.5"
    assert _pick_address(["fe80::1%2"]) == "fe80::1%2"
    for bad in ([], ["0.0.0.0"], ["224.0.0.251"], ["nonsense"]):
        with pytest.raises(BadRecordError):
            _pick_address(bad)
