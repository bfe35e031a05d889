# The error tree shared by every layer (L0). See docs/security.md for how the daemon reacts.
#
#   NodeError
#   +-- ProtocolError              abstract; never raised directly
#   |   +-- LocalProtocolError     our own caller broke the API (wrong state, bad argument)
#   |   +-- RemoteProtocolError    the peer broke the protocol; .reason is what to put in `bye`
#   |       +-- IntegrityError     bad signature, hash, key or chain link in a log entry
#   +-- LinkError                  transport failure; .cause names the foreign error
#   +-- StoreError                 disk or database trouble
#   +-- ConfigError                invalid configuration; .key names the key path
#
# After any ProtocolError a session goes to ERROR and stays there (h11). Normal endings are events,
# not exceptions.


class NodeError(Exception):
    """Base of every error Waystation raises on purpose."""


class ProtocolError(NodeError):
    """A protocol rule was broken. Abstract: raise Local- or RemoteProtocolError."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError(
                "ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError"
            )
        super().__init__(message)
        self.message = message


class LocalProtocolError(ProtocolError):
    """We misused an API: a bug on our side, never the peer's fault."""


# Reasons carried to the peer in `bye`: the one home of the wire reason codes. Short ASCII tokens;
# docs/protocol.md ("Bye reasons") lists them.
REASON_OK = "ok"
REASON_SHUTDOWN = "shutdown"
REASON_MALFORMED = "malformed"
REASON_INTEGRITY = "integrity"
REASON_TOO_LARGE = "too-large"
REASON_UNEXPECTED = "unexpected"
REASON_TIMEOUT = "timeout"
REASON_FLOW = "flow"
REASON_VERSION = "version"
REASON_UNSETTLED = "unsettled"
REASON_QUOTA = "quota"
REASON_STORE_ERROR = "store-error"
REASON_REVOKED = "revoked"
REASON_IDLE = "idle"
REASON_BUSY = "busy"

BYE_REASONS = (
    REASON_OK,
    REASON_SHUTDOWN,
    REASON_MALFORMED,
    REASON_INTEGRITY,
    REASON_TOO_LARGE,
    REASON_UNEXPECTED,
    REASON_TIMEOUT,
    REASON_FLOW,
    REASON_VERSION,
    REASON_UNSETTLED,
    REASON_QUOTA,
    REASON_STORE_ERROR,
    REASON_REVOKED,
    REASON_IDLE,
    REASON_BUSY,
)

# How a link can end without a Bye from either side (never sent on the wire).
ENDING_LOST = "lost"  # the transport dropped
ENDING_INTERNAL_ERROR = "internal-error"  # a bug in our own code for that link
LOCAL_ENDINGS = (ENDING_LOST, ENDING_INTERNAL_ERROR)


class RemoteProtocolError(ProtocolError):
    """The peer misbehaved.

    Attributes:
        message: what was wrong, for logs and for the peer.
        reason: the short reason code to send in `bye` (see docs/protocol.md).
    """

    def __init__(self, message: str, reason: str = REASON_MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


class IntegrityError(RemoteProtocolError):
    """A log entry, block or envelope failed a cryptographic or structural check."""

    def __init__(self, message: str) -> None:
        super().__init__(message, REASON_INTEGRITY)


class LinkError(NodeError):
    """The transport failed. `cause` names the foreign error (e.g. a D-Bus error name)."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


class StoreError(NodeError):
    """The store could not do what was asked (disk, database, corruption)."""


class ConfigError(NodeError):
    """The configuration is invalid. `key` is the dotted key path, e.g. `store.max_entry_bytes`."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key + ": " + reason)
        self.key = key
        self.reason = reason
