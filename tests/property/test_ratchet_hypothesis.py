"""Any delivery order of k <= 150 messages, with the chain key delivered at any point (and
messages delivered twice), ends with every message within reach decrypted exactly once."""

from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import envelope as env
from node.crypto import ratchet as rt
from node.crypto._nacl import NaclSuite

SUITE = NaclSuite()
GROUP_PK, _ = SUITE.ed25519_keypair(b"\x01" * 32)
SECRET = b"\x02" * 32
ALICE_PK, ALICE_SK = SUITE.ed25519_keypair(b"\x03" * 32)
BOB_PK, _ = SUITE.ed25519_keypair(b"\x04" * 32)
MAX_K = 150


def _make_messages() -> tuple[list[tuple[bytes, env.SealedMessage]], list[tuple[bytes, int]]]:
    alice = rt.RatchetState(SUITE, GROUP_PK, ALICE_PK)
    alice.start_own_chain(b"\x07" * 32)
    chains = [alice.own_chain()]  # chains[i] = state after i messages
    messages = []
    for i in range(1, MAX_K + 1):
        envelope = alice.seal(SECRET, ALICE_SK, b"m%d" % i)
        messages.append((b"cid%d" % i, env.open_message_headers(SUITE, SECRET, envelope)))
        chains.append(alice.own_chain())
    return messages, chains


MESSAGES, CHAINS = _make_messages()


@st.composite
def schedules(draw: st.DrawFn) -> tuple[int, int, list[int], int]:
    k = draw(st.integers(min_value=1, max_value=MAX_K))
    base = draw(st.integers(min_value=0, max_value=k))  # which chain state is shared
    order = draw(st.permutations(list(range(k))))
    extra = draw(st.lists(st.integers(0, k - 1), max_size=10))  # duplicate deliveries
    deliveries = list(order)
    for position, index in enumerate(extra):
        deliveries.insert((position * 7) % (len(deliveries) + 1), index)
    key_at = draw(st.integers(min_value=0, max_value=len(deliveries)))
    return k, base, deliveries, key_at


@settings(max_examples=200, deadline=None)
@given(schedules())
def test_every_reachable_message_decrypted_once(schedule: tuple[int, int, list[int], int]) -> None:
    k, base, deliveries, key_at = schedule
    bob = rt.RatchetState(SUITE, GROUP_PK, BOB_PK)
    events: list[rt.RatchetEvent] = []
    for step, index in enumerate(deliveries):
        if step == key_at:
            events.extend(bob.register_chain_key(ALICE_PK, *CHAINS[base]))
        events.extend(bob.receive(*MESSAGES[index]))
    if key_at == len(deliveries):
        events.extend(bob.register_chain_key(ALICE_PK, *CHAINS[base]))
    opened = sorted(e.counter for e in events if e.kind == rt.DECRYPTED)
    assert opened == list(range(base + 1, k + 1))  # exactly once each, nothing unreachable
    for e in events:
        if e.kind == rt.DECRYPTED:
            assert e.plaintext == b"m%d" % e.counter
    assert not any(e.kind in (rt.DROPPED, rt.REJECTED) for e in events)
    assert bob.queue_count == 0 and bob.queued() == []
    unreadable = {e.counter for e in events if e.kind == rt.UNREADABLE}
    assert unreadable == set(range(1, base + 1))
    restored = rt.RatchetState.from_dict(SUITE, bob.to_dict())
    assert restored.to_dict() == bob.to_dict()
