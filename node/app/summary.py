"""The Summary on a link (sans-IO, L2): a paired member's interest in one message.

Theory of operation
-------------------
node.app.interest decides what a Summary says and what it means (LogTable.offer, answer,
answered); node.app.passes runs pass 1 when it rides in the offer (Passes.fold, open_folded,
folded_answer). These two functions join them on a LinkCore, the way its other session events are
handled (docs/protocol.md, "The Summary"):

    open_with_summary   initiator, Noise up: a member with a stable key sends its offer right
                        behind its Hello, pass 1 folded in when it has at most 4 logs
    on_summary          responder: answer the offer (and reconcile a folded pass 1, whose result
                        decides IN_SYNC or KNOWN); initiator: act on the answer (in sync: Bye
                        "ok" for `peer sync`; known: pass 1 goes on, or a pass is due; unknown:
                        declare in Interest messages)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.app.interest import SUMMARY_VERDICTS
from node.errors import REASON_OK
from node.proto.messages import (
    ROLE_MEMBER,
    SUMMARY_IN_SYNC,
    SUMMARY_KNOWN,
    SUMMARY_UNKNOWN,
    Summary,
)

if TYPE_CHECKING:
    from node.app.linkcore import LinkCore


def open_with_summary(core: LinkCore, now: int) -> None:
    """Initiator, handshake done: a member with a stable static key opens with a Summary."""
    ctx = core.ctx
    if not core.initiator or ctx.role != ROLE_MEMBER or ctx.static_private is None:
        return  # a fresh key: nothing could be remembered for it; declare after the Hellos
    offer = core.logs.offer(core.keyset)
    offer.frame = core.passes.fold(core.logs.offered_logs, core.keyset, core.progress())
    core.session.send_summary(offer, now)


def on_summary(core: LinkCore, summary: Summary, now: int) -> None:
    """A Summary arrived: answer the offer (responder), or act on the answer (initiator).

    Raises:
        RemoteProtocolError: a Summary out of turn, or a folded pass 1 that does not parse.
    """
    logs, passes, session = core.logs, core.passes, core.session
    if not core.initiator:
        reply, frames = logs.answer(summary, core.keyset), []
        if summary.frame and reply.kind != SUMMARY_UNKNOWN:  # pass 1 came with the offer
            frames = passes.open_folded(logs.agreed(), core.keyset, summary.frame)
            reply = Summary(SUMMARY_KNOWN if frames else SUMMARY_IN_SYNC)
        session.send_summary(reply, now)
        core.ctx.count("summary.answered.%s" % SUMMARY_VERDICTS[reply.kind])
        core.outcome.logs_declared = logs.peer_declarations
        core.send_reconcile(frames, now)
        return
    folded = passes.folded
    passes.folded_answer(summary.kind)
    verdict, answer = logs.answered(summary, core.keyset)
    core.ctx.count("summary." + verdict)
    for declarations in answer.messages:
        session.send_interest(declarations, now)
    if answer.reconcile and not (folded and summary.kind == SUMMARY_KNOWN):
        passes.need_pass = True  # (a folded pass 1 answered KNOWN is already running)
    elif verdict == "in-sync":
        core.outcome.in_sync = True
        if core.until_synced:
            session.close(REASON_OK, "", now)  # in sync
