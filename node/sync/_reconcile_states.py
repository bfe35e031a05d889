# The per-log state table of reconciliation (L0). Every state a log can be in during a pass, and
# every input that may move it, lives in this file; node/sync/reconcile.py and
# node/sync/reconcile_sketch.py look each input up here before acting on it.
#
# Theory of operation
# -------------------
# A Reconciler keeps one state per log. States are named for what the log waits for:
#
#   AWAIT_OPEN    nothing said yet: the responder waits for the initiator's OPEN; the initiator's
#                 start() leaves it with START
#   AWAIT_REPLY   the initiator sent OPEN and waits for the responder's answer (nothing: in sync;
#                 AHEAD; CUTS)
#   AWAIT_TAIL    the responder sent CUTS and waits for the initiator's move (AHEAD, RANGES or a
#                 SKETCH)
#   AWAIT_RANGES  we sent ranges (fingerprints or ID lists) and wait for the answers
#   AWAIT_DIFF    we sent a sketch and wait for DIFF, a bigger sketch, or RANGES
#   DONE          nothing more to say or hear for this log in this pass
#
# Inputs are the op of a received section (OPEN ... DIFF), START (the initiator's first turn) and
# TURN_ENDED (the peer's turn ended without asking anything more of this log).
#
# TRANSITIONS maps (state, input) to (action, the next states the action may choose). The action
# decides among them from what it finds (e.g. OPEN leads to DONE when the logs match, to
# AWAIT_TAIL when we answer with CUTS); the reconciler checks that it chose one of them. A peer's
# section whose (state, op) is not in the table raises RemoteProtocolError (reason "unexpected").
# docs/protocol.md draws this table (tools/draw_states.py).
#
# Actions:
#   start   send OPEN (count, fingerprint)        open    compare; answer nothing, AHEAD or CUTS
#   ahead   the peer holds our whole set and more: expect its tail
#   cuts    find the common prefix; answer AHEAD, RANGES or a SKETCH
#   ranges  answer each range: nothing, IDS/FULLIDS, NEED or split fingerprints
#   sketch  add the sketch's cells; when complete, peel: DIFF, a bigger sketch, or ranges
#   diff    push what the peer lacks, expect what it announces
#   settle  the exchange for this log is over        ignore  nothing to do

AWAIT_OPEN = "AWAIT_OPEN"
AWAIT_REPLY = "AWAIT_REPLY"
AWAIT_TAIL = "AWAIT_TAIL"
AWAIT_RANGES = "AWAIT_RANGES"
AWAIT_DIFF = "AWAIT_DIFF"
DONE = "DONE"

STATES = (AWAIT_OPEN, AWAIT_REPLY, AWAIT_TAIL, AWAIT_RANGES, AWAIT_DIFF, DONE)

OPEN = "OPEN"
AHEAD = "AHEAD"
CUTS = "CUTS"
RANGES = "RANGES"
SKETCH = "SKETCH"
DIFF = "DIFF"
START = "START"
TURN_ENDED = "TURN_ENDED"

SECTION_INPUTS = (OPEN, AHEAD, CUTS, RANGES, SKETCH, DIFF)  # in op-code order: op 1 is OPEN
INPUTS = (OPEN, AHEAD, CUTS, RANGES, SKETCH, DIFF, START, TURN_ENDED)

# a SKETCH section leaves more cells due (the state stays), or completes it: peeled (DONE, DIFF
# sent), not peeled (our bigger sketch: AWAIT_DIFF), or failed at the full size (AWAIT_RANGES)

TRANSITIONS = {
    (AWAIT_OPEN, START): ("start", (AWAIT_REPLY,)),
    (AWAIT_OPEN, OPEN): ("open", (DONE, AWAIT_TAIL)),
    (AWAIT_REPLY, AHEAD): ("ahead", (DONE,)),
    (AWAIT_REPLY, CUTS): ("cuts", (DONE, AWAIT_RANGES, AWAIT_DIFF)),
    (AWAIT_REPLY, TURN_ENDED): ("settle", (DONE,)),
    (AWAIT_TAIL, AHEAD): ("ahead", (DONE,)),
    (AWAIT_TAIL, RANGES): ("ranges", (AWAIT_RANGES,)),
    (AWAIT_TAIL, SKETCH): ("sketch", (AWAIT_TAIL, AWAIT_DIFF, AWAIT_RANGES, DONE)),
    (AWAIT_TAIL, TURN_ENDED): ("settle", (DONE,)),
    (AWAIT_RANGES, RANGES): ("ranges", (AWAIT_RANGES,)),
    (AWAIT_RANGES, TURN_ENDED): ("settle", (DONE,)),
    (AWAIT_DIFF, DIFF): ("diff", (AWAIT_DIFF,)),
    (AWAIT_DIFF, SKETCH): ("sketch", (AWAIT_DIFF, AWAIT_RANGES, DONE)),
    (AWAIT_DIFF, RANGES): ("ranges", (AWAIT_RANGES,)),
    (AWAIT_DIFF, TURN_ENDED): ("settle", (DONE,)),
    (DONE, TURN_ENDED): ("ignore", (DONE,)),
}


def transition(state: str, event: str) -> "tuple[str, tuple[str, ...]] | None":
    """The (action, allowed next states) for `event` in `state`, or None when not allowed."""
    return TRANSITIONS.get((state, event))
