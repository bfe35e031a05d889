"""Two relays that carry no log yet sync with each other (a fresh relay meets its configured peer).

The initiator's pass names zero logs and, having no reconciler frame to send, sends only the
pass header (docs/protocol.md "Sync passes": `01 ‖ uv n=0`). The responder must accept that
pass as trivially in sync; it used to hand the empty rest to the reconciler, which refused it as
a frame "shorter than its 2-byte header", so every sync between two empty relays ended
"malformed" and was counted as a peer error.
"""

import asyncio

from node.proto.messages import ROLE_RELAY
from node.sync.store import MemoryStore
from tests.sync_helpers import SUITE, make_context, sync_over_tcp


def test_two_empty_relays_sync_ok() -> None:
    initiator = make_context(MemoryStore(SUITE.ed25519_verify), ROLE_RELAY)
    responder = make_context(MemoryStore(SUITE.ed25519_verify), ROLE_RELAY)
    # The deadline is well below the 20 s keepalive that used to be the only thing ending the pass,
    # and generous for two loaded cores.
    mine, theirs = asyncio.run(sync_over_tcp(initiator, responder, timeout=10.0))
    assert (mine.reason, mine.in_sync, mine.by_peer) == ("ok", True, False)
    assert (theirs.reason, theirs.by_peer) == ("ok", True)
    assert not [name for name in responder.stats if name.startswith("peer_errors.")]
    assert not [name for name in initiator.stats if name.startswith("peer_errors.")]
