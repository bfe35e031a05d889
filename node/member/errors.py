"""The member side's one error type: something the user asked for cannot be done."""

from node.errors import NodeError


class MemberError(NodeError):
    """A user-facing failure (not initialised, unknown group, bad invitation, unreadable file).

    The message is meant to be shown as is; the CLI prints it and exits non-zero.
    """
