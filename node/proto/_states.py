# The session state table (L0). Every state transition of a link session lives in this file.
#
# Theory of operation
# -------------------
# A session is one link between two nodes (member<->relay or relay<->relay), over any transport.
# It first runs a Noise XX handshake, then each side sends Hello, then both exchange messages
# until one says Bye or the link drops. States are named for what the session waits for:
#
#   AWAIT_HANDSHAKE  Noise handshake messages (no session message can be read yet)
#   AWAIT_HELLO      the peer's Hello (ours is sent the moment the handshake completes; the
#                    initiator may send its Summary right behind it, in the same flight)
#   OPEN             anything: summary, interest, reconcile, entries, acks, pairing, bye
#   CLOSING          we said Bye and wait for the peer's Bye (or the link to drop, or a deadline)
#   CLOSED           done, normally
#   ERROR            done because a protocol rule was broken (by the peer, or by us)
#
# Inputs are what happened: a message of some type arrived (RECV_*), the link dropped
# (CONNECTION_LOST), a deadline passed (DEADLINE_PASSED), the handshake completed
# (HANDSHAKE_COMPLETED, state-triggered), or our caller asked to send something (SEND_*). Two
# inputs come from the session itself: we owe the peer a sign of life (KEEPALIVE_DUE, a timer in
# OPEN) and a protocol rule was broken while handling another input (PROTOCOL_FAILED), so that
# every change of state, timers and failures included, is a row of this table.
#
# TRANSITIONS maps (state, input) to (action, next state). Anything not in the table is an error:
# a peer's input raises RemoteProtocolError (reason "unexpected") and the session goes to ERROR; a
# caller's or the session's own input raises LocalProtocolError and changes nothing. In CLOSED
# and ERROR every input not in the table is the caller's mistake (it fed a finished session).
# docs/protocol.md draws this table (tools/draw_states.py regenerates the drawing).
#
# Actions (implemented by node.proto.session.Session):
#   handshake   process a Noise handshake message, maybe answer it
#   send_hello  send our Hello                       hello     check and record the peer's Hello
#   deliver     hand the message to the caller       send      encode and queue our message
#   ignore      drop it (messages still in flight while we close)
#   answer_bye  the peer said Bye: answer with Bye   say_bye   we say Bye (caller's reason)
#   timeout     a deadline passed: say Bye "timeout" lost      the link dropped
#   finish      the close completed                  abort     closing before keys exist
#   keepalive   send an empty Ack (no event)         fail      say Bye with the error's reason
#                                                              when keys exist; report the end

AWAIT_HANDSHAKE = "AWAIT_HANDSHAKE"
AWAIT_HELLO = "AWAIT_HELLO"
OPEN = "OPEN"
CLOSING = "CLOSING"
CLOSED = "CLOSED"
ERROR = "ERROR"

STATES = (AWAIT_HANDSHAKE, AWAIT_HELLO, OPEN, CLOSING, CLOSED, ERROR)
TERMINAL_STATES = (CLOSED, ERROR)

# Inputs from the peer (or the link).
RECV_HANDSHAKE = "RECV_HANDSHAKE"
RECV_HELLO = "RECV_HELLO"
RECV_INTEREST = "RECV_INTEREST"
RECV_RECONCILE = "RECV_RECONCILE"
RECV_ENTRIES = "RECV_ENTRIES"
RECV_ACK = "RECV_ACK"
RECV_PAIRING = "RECV_PAIRING"
RECV_BYE = "RECV_BYE"
RECV_SUMMARY = "RECV_SUMMARY"
CONNECTION_LOST = "CONNECTION_LOST"
DEADLINE_PASSED = "DEADLINE_PASSED"
HANDSHAKE_COMPLETED = "HANDSHAKE_COMPLETED"

# Inputs from our caller.
SEND_INTEREST = "SEND_INTEREST"
SEND_RECONCILE = "SEND_RECONCILE"
SEND_ENTRIES = "SEND_ENTRIES"
SEND_ACK = "SEND_ACK"
SEND_PAIRING = "SEND_PAIRING"
SEND_BYE = "SEND_BYE"
SEND_SUMMARY = "SEND_SUMMARY"

REMOTE_INPUTS = (
    RECV_HANDSHAKE,
    RECV_HELLO,
    RECV_INTEREST,
    RECV_RECONCILE,
    RECV_ENTRIES,
    RECV_ACK,
    RECV_PAIRING,
    RECV_BYE,
    RECV_SUMMARY,
    CONNECTION_LOST,
    DEADLINE_PASSED,
    HANDSHAKE_COMPLETED,
)
LOCAL_INPUTS = (
    SEND_INTEREST,
    SEND_RECONCILE,
    SEND_ENTRIES,
    SEND_ACK,
    SEND_PAIRING,
    SEND_BYE,
    SEND_SUMMARY,
)

# Inputs from the session itself.
KEEPALIVE_DUE = "KEEPALIVE_DUE"
PROTOCOL_FAILED = "PROTOCOL_FAILED"
INTERNAL_INPUTS = (KEEPALIVE_DUE, PROTOCOL_FAILED)

INPUTS = REMOTE_INPUTS + LOCAL_INPUTS + INTERNAL_INPUTS

_OPEN_RECV = (RECV_INTEREST, RECV_RECONCILE, RECV_ENTRIES, RECV_ACK, RECV_PAIRING, RECV_SUMMARY)
_OPEN_SEND = (SEND_INTEREST, SEND_RECONCILE, SEND_ENTRIES, SEND_ACK, SEND_PAIRING, SEND_SUMMARY)

TRANSITIONS = {
    (AWAIT_HANDSHAKE, RECV_HANDSHAKE): ("handshake", AWAIT_HANDSHAKE),
    (AWAIT_HANDSHAKE, HANDSHAKE_COMPLETED): ("send_hello", AWAIT_HELLO),
    (AWAIT_HANDSHAKE, CONNECTION_LOST): ("lost", CLOSED),
    (AWAIT_HANDSHAKE, DEADLINE_PASSED): ("abort", CLOSED),
    (AWAIT_HANDSHAKE, SEND_BYE): ("abort", CLOSED),
    (AWAIT_HELLO, RECV_HELLO): ("hello", OPEN),
    (AWAIT_HELLO, RECV_BYE): ("answer_bye", CLOSED),
    (AWAIT_HELLO, CONNECTION_LOST): ("lost", CLOSED),
    (AWAIT_HELLO, DEADLINE_PASSED): ("timeout", CLOSING),
    (AWAIT_HELLO, SEND_BYE): ("say_bye", CLOSING),
    (AWAIT_HELLO, SEND_SUMMARY): ("send", AWAIT_HELLO),  # the initiator's, behind its Hello
    (OPEN, RECV_BYE): ("answer_bye", CLOSED),
    (OPEN, CONNECTION_LOST): ("lost", CLOSED),
    (OPEN, DEADLINE_PASSED): ("timeout", CLOSING),
    (OPEN, SEND_BYE): ("say_bye", CLOSING),
    (CLOSING, RECV_HELLO): ("ignore", CLOSING),
    (CLOSING, RECV_BYE): ("finish", CLOSED),
    (CLOSING, CONNECTION_LOST): ("finish", CLOSED),
    (CLOSING, DEADLINE_PASSED): ("finish", CLOSED),
    (CLOSING, SEND_BYE): ("ignore", CLOSING),
    (CLOSED, CONNECTION_LOST): ("ignore", CLOSED),
    (CLOSED, DEADLINE_PASSED): ("ignore", CLOSED),
    (CLOSED, SEND_BYE): ("ignore", CLOSED),
    (ERROR, CONNECTION_LOST): ("ignore", ERROR),
    (ERROR, DEADLINE_PASSED): ("ignore", ERROR),
    (ERROR, SEND_BYE): ("ignore", ERROR),
    (OPEN, KEEPALIVE_DUE): ("keepalive", OPEN),
    (CLOSED, PROTOCOL_FAILED): ("ignore", CLOSED),
    (ERROR, PROTOCOL_FAILED): ("ignore", ERROR),
}
for _state in (AWAIT_HANDSHAKE, AWAIT_HELLO, OPEN, CLOSING):
    TRANSITIONS[(_state, PROTOCOL_FAILED)] = ("fail", ERROR)
for _input in _OPEN_RECV:
    TRANSITIONS[(OPEN, _input)] = ("deliver", OPEN)
    TRANSITIONS[(CLOSING, _input)] = ("ignore", CLOSING)
for _input in _OPEN_SEND:
    TRANSITIONS[(OPEN, _input)] = ("send", OPEN)


def transition(state: str, event: str) -> "tuple[str, str] | None":
    """The (action, next state) for `event` in `state`, or None when the pair is not allowed."""
    return TRANSITIONS.get((state, event))
