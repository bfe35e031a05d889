# Property tests for the L0 codecs against independent implementations (CPython only).
#
#   * DAG-CBOR and CIDs against libipld (Rust, from PyPI). libipld decodes tag 42 to the binary CID
#     as bytes and cannot encode CIDs, so CID-bearing values are compared after mapping each CID to
#     its binary form; encode-equality uses CID-free values. libipld writes -0.0 as +0.0 (drops the
#     sign), so -0.0 is left out of encode-equality (tests/portable checks our 0x8000... form).
#     libipld's decoder is laxer than ours (it accepts non-shortest integers), so for arbitrary
#     bytes the property is one-way: whatever we accept, libipld accepts with the same value.
#   * Go JSON against Python's json module: json.dumps(sort_keys=True, separators=(",", ":"),
#     ensure_ascii=False) writes the same escapes as Go >= 1.22 (\" \\ \b \f \n \r \t, other
#     controls as lower-case \u00xx, DEL raw) and sorts by code point, which equals Go's sort by
#     UTF-8 bytes. Differences we add to the reference: Go's HTML escapes for < > &, and
#     \u2028 \u2029. For invalid UTF-8, Python's surrogateescape turns each byte outside a valid
#     sequence into one lone surrogate, exactly the bytes Go turns into \ufffd; the reference
#     rewrites those surrogates to \ufffd.

import json
import math
import re

import libipld
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.errors import RemoteProtocolError
from node.sync import dagcbor, gojson
from node.sync.cid import CID, DAG_CBOR, RAW
from node.sync.multibase import base32_decode, base32_encode, base58_decode, base58_encode

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not (f == 0.0 and math.copysign(1.0, f) < 0)
)
cids = st.builds(CID, st.sampled_from([DAG_CBOR, RAW]), st.binary(min_size=32, max_size=32))

def _is_binary_cid(data: bytes) -> bool:
    """libipld (3.x) encodes bytes that parse as a binary CID as a tag-42 link, not as bytes."""
    try:
        libipld.decode_cid(data)
    except ValueError:
        return False
    return True


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | finite_floats
    | st.text(max_size=40)
    | st.binary(max_size=40).filter(lambda b: not _is_binary_cid(b))
)


def trees(leaves):
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=6)
            | st.dictionaries(st.text(max_size=10), children, max_size=6)
        ),
        max_leaves=30,
    )


plain_values = trees(scalars)
values_with_cids = trees(scalars | cids)


def cids_as_bytes(value):
    """The value as libipld decodes it: every CID becomes its binary form."""
    if isinstance(value, CID):
        return value.to_bytes()
    if isinstance(value, list):
        return [cids_as_bytes(v) for v in value]
    if isinstance(value, dict):
        return {k: cids_as_bytes(v) for k, v in value.items()}
    return value


def same(a, b):
    """Equality that also tells bool from int and float from int."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@SETTINGS
@given(plain_values)
def test_encode_matches_libipld(value):
    assert dagcbor.encode(value) == libipld.encode_dag_cbor(value)


@SETTINGS
@given(plain_values)
def test_decode_libipld_bytes(value):
    assert same(dagcbor.decode(libipld.encode_dag_cbor(value)), value)


@SETTINGS
@given(values_with_cids)
def test_round_trip_and_libipld_reads_ours(value):
    block = dagcbor.encode(value)
    assert same(dagcbor.decode(block), value)
    assert same(libipld.decode_dag_cbor(block), cids_as_bytes(value))


def check_decode_or_refuse(data):
    try:
        value = dagcbor.decode(data)
    except RemoteProtocolError as exc:
        assert "at offset" in str(exc)
        return
    # Accepted: it must be canonical, and libipld must agree on the value.
    assert dagcbor.encode(value) == data
    assert same(libipld.decode_dag_cbor(data), cids_as_bytes(value))


@SETTINGS
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_refuse(data):
    check_decode_or_refuse(data)


@SETTINGS
@given(values_with_cids, st.data())
def test_mutated_blocks_decode_or_refuse(value, data):
    block = bytearray(dagcbor.encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(block) - 1))
        block[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(block)))
    check_decode_or_refuse(bytes(block[:cut]))


@SETTINGS
@given(cids)
def test_cid_text_matches_libipld(cid):
    binary = cid.to_bytes()
    assert str(cid) == libipld.encode_cid(binary)
    assert cid.to_base58() == libipld.encode_multibase("z", binary)
    assert CID.parse(libipld.encode_cid(binary)) == cid
    decoded = libipld.decode_cid(cid.to_base58())
    assert decoded["version"] == 1
    assert decoded["codec"] == cid.codec
    assert decoded["hash"]["code"] == 0x12
    assert decoded["hash"]["digest"] == cid.digest


@SETTINGS
@given(st.binary(max_size=80))
def test_cid_from_block(block):
    cid = CID.from_block(block)
    assert str(cid).startswith("bafyrei")
    assert cid.to_base58().startswith("zdpu")
    assert CID.parse(str(cid)) == cid


@SETTINGS
@given(st.binary(max_size=60))
def test_cid_from_random_bytes(data):
    try:
        cid = CID.from_bytes(data)
    except RemoteProtocolError:
        return
    assert cid.to_bytes() == data


@SETTINGS
@given(st.text(max_size=70))
def test_cid_parse_random_text(text):
    try:
        cid = CID.parse(text)
    except RemoteProtocolError:
        return
    assert text in (str(cid), cid.to_base58())


@SETTINGS
@given(st.binary(max_size=60))
def test_multibase_matches_libipld(data):
    assert "b" + base32_encode(data) == libipld.encode_multibase("b", data)
    assert "z" + base58_encode(data) == libipld.encode_multibase("z", data)
    assert base32_decode(base32_encode(data)) == data
    assert base58_decode(base58_encode(data)) == data


@SETTINGS
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567=A1", max_size=20))
def test_base32_strict_decode(text):
    try:
        data = base32_decode(text)
    except RemoteProtocolError:
        return
    assert base32_encode(data) == text


_SURROGATE_ESCAPED = re.compile("[\udc80-\udcff]")


def go_reference(value):
    """Go json.Marshal bytes from Python's json module plus the documented differences."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = _SURROGATE_ESCAPED.sub(lambda _m: "\\ufffd", text)
    for plain, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(plain, escaped)
    return text.encode("utf-8")


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=30)
    | st.sampled_from(["<&>", "\u2028\u2029", "\x00\x1f\x7f\b\f", "\ufffd", '"\\'])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@SETTINGS
@given(json_values)
def test_gojson_matches_reference_on_valid_strings(value):
    assert gojson.dumps(value) == go_reference(value)


@SETTINGS
@given(st.binary(max_size=40))
def test_gojson_invalid_utf8_matches_reference(raw):
    expected = go_reference(raw.decode("utf-8", "surrogateescape"))
    assert gojson.dumps(raw) == expected
    assert gojson.dumps({raw: [raw]}) == go_reference(
        {raw.decode("utf-8", "surrogateescape"): [raw.decode("utf-8", "surrogateescape")]}
    )


@SETTINGS
@given(st.lists(st.text(max_size=6), max_size=8))
def test_gojson_keys_sort_by_utf8_bytes(keys):
    out = gojson.dumps(dict.fromkeys(keys, 1))
    order = json.loads(out, object_pairs_hook=lambda pairs: [k for k, _v in pairs])
    assert order == sorted(set(keys), key=lambda k: k.encode("utf-8"))
