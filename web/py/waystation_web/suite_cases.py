"""Suite cross-check: the same calls on any two suites must give the same bytes.

`run_cases(suite)` makes every Suite method's call on inputs derived from a fixed seed and returns
their results as hex (errors as "error:<class name>"). web/tests/suite.test.mjs runs it with JsSuite
in Pyodide and with NaclSuite under CPython (web/tests/suite_reference.py) and compares.
"""

from node.crypto.api import BLAKE2B, SHA3_256, SHA256, SHA512, Suite
from node.errors import NodeError


def _inputs(suite: Suite) -> "dict[str, bytes]":
    seed_a = suite.digest(SHA256, b"waystation web suite a")
    seed_b = suite.digest(SHA256, b"waystation web suite b")
    return {"seed_a": seed_a, "seed_b": seed_b, "nonce24": bytes(range(24)),
            "nonce12": bytes(range(12)), "text": b"the same bytes \x00\xff" * 9}


def run_cases(suite: Suite) -> "dict[str, str]":
    """Every method of `suite` on fixed inputs; results (or error classes) by case name."""
    i = _inputs(suite)
    out: "dict[str, str]" = {}

    def case(name: str, fn: "object") -> None:
        try:
            value = fn()  # type: ignore[operator]
        except NodeError as exc:
            out[name] = "error:" + type(exc).__name__
            return
        out[name] = value.hex() if isinstance(value, bytes) else repr(value)

    pk_a, sk_a = suite.ed25519_keypair(i["seed_a"])
    pk_b, sk_b = suite.ed25519_keypair(i["seed_b"])
    xa, xb = suite.ed25519_sk_to_x25519(sk_a), suite.ed25519_sk_to_x25519(sk_b)
    xpub_b = suite.x25519_public(xb)
    text = i["text"]
    for name in (SHA256, SHA512, SHA3_256, BLAKE2B):
        case("digest " + name, lambda n=name: suite.digest(n, text))
        case("hmac " + name, lambda n=name: suite.hmac(n, i["seed_a"], text))
    case("keypair", lambda: pk_a + sk_a)
    sig = suite.ed25519_sign(sk_a, text)
    case("sign", lambda: sig)
    case("verify", lambda: suite.ed25519_verify(pk_a, text, sig))
    case("verify other key", lambda: suite.ed25519_verify(pk_b, text, sig))
    case("verify short sig", lambda: suite.ed25519_verify(pk_a, text, sig[:63]))
    case("pk to x25519", lambda: suite.ed25519_pk_to_x25519(pk_a))
    case("sk to x25519", lambda: xa)
    case("x25519 public", lambda: xpub_b)
    case("x25519", lambda: suite.x25519(xa, xpub_b))
    case("x25519 low order", lambda: suite.x25519(xa, bytes(32)))
    sealed = suite.secretbox_seal(i["seed_b"], i["nonce24"], text)
    case("secretbox seal", lambda: sealed)
    case("secretbox open", lambda: suite.secretbox_open(i["seed_b"], i["nonce24"], sealed))
    case("secretbox tampered", lambda: suite.secretbox_open(
        i["seed_b"], i["nonce24"], sealed[:-1] + bytes([sealed[-1] ^ 1])))
    boxed = suite.box_seal(suite.x25519_public(xa), xb, i["nonce24"], text)
    case("box seal", lambda: boxed)
    case("box open", lambda: suite.box_open(xpub_b, xa, i["nonce24"], boxed))
    case("box wrong key", lambda: suite.box_open(xpub_b, xb, i["nonce24"], boxed))
    aead = suite.aead_seal(i["seed_a"], i["nonce12"], b"ad", text)
    case("aead seal", lambda: aead)
    case("aead open", lambda: suite.aead_open(i["seed_a"], i["nonce12"], b"ad", aead))
    case("aead other ad", lambda: suite.aead_open(i["seed_a"], i["nonce12"], b"AD", aead))
    case("random length", lambda: len(suite.random_bytes(33)))
    return out
