# The weshnet symmetric ratchet, sans-IO (L0, member side).
#
# Theory of operation
# -------------------
# KDF (berty-wesh.md §2.1): HKDF-SHA256(IKM = chain_key, salt = nil, info = group_pk) -> 64 bytes
# = next chain key || message key. The payload nonce is BE64(counter) || 16 zero bytes.
#
# One RatchetState per group on one device holds:
#   * our sending chain (CK_n, n): sealing uses counter n+1 and mk(CK_n), then the chain becomes
#     (next(CK_n), n+1). The key of each sent message is kept by counter until the message comes
#     back from the log (our own messages are read like anyone's), then it is kept by CID.
#   * per remote device, from the chain key (CK, c) it shared with us: the message keys for
#     c+1 .. c+WINDOW (WINDOW = 100, weshnet's PrecomputeMessageKeyCount) and the chain advanced
#     to c+WINDOW. Each newly decrypted message consumes its key (it moves to the by-CID table so
#     re-reads work) and derives ONE more key at the top, so WINDOW keys are always waiting. Keys
#     skipped by lost messages wait forever, as in weshnet. Counters <= c are never readable
#     (joiners read from the moment they joined); such messages are reported UNREADABLE.
#   * a per-device queue, ordered by counter, of messages that cannot be opened yet: the device's
#     chain key has not arrived, or the counter is above the window. The queue is retried when a
#     chain key arrives and after every newly decrypted message of that device.
#
# Bounds (weshnet's queue is unbounded, a RAM-exhaustion risk): at most `max_queue_per_device`
# (1000) entries per device, `max_queue_total` (10000) and `max_queue_bytes` (32 MiB) overall.
# When a bound is exceeded the entry with the HIGHEST counter is dropped (of that device for the
# per-device bound; of the longest queue, ties broken by the smaller device key, for the global
# bounds) -- that may be the message just offered. Low counters are kept because they are the
# ones the sliding window reaches first. A DROPPED event names the message: it is still in the
# log, and the caller may offer it again later (e.g. after the chain key arrives).
#
# Idempotence: a CID already read gives DUPLICATE (with its plaintext, by the stored key: that is
# the re-read path); a (device, counter) already read under another CID gives DUPLICATE if the
# envelope opens with that key, IntegrityError otherwise; a CID already queued is not queued twice.
# DECRYPTED is reported exactly once per message.
#
# The state holds no clock and does no I/O. to_dict()/from_dict() give a plain dict (str keys,
# bytes/int/str/list values -- DAG-CBOR-encodable) for the member side to persist. The by-CID
# table grows by one entry (~80 bytes) per message ever read, as weshnet's does.

from node.crypto import envelope as env
from node.crypto.api import SHA256
from node.crypto.kdf import hkdf
from node.errors import IntegrityError, LocalProtocolError, RemoteProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from node.crypto.api import Suite

WINDOW = 100
MAX_QUEUE_PER_DEVICE = 1000
MAX_QUEUE_TOTAL = 10000
MAX_QUEUE_BYTES = 32 * 1024 * 1024
STATE_VERSION = 1
_U64 = 1 << 64

# Event kinds
DECRYPTED = "decrypted"  # first successful decryption: plaintext, metadata set
DUPLICATE = "duplicate"  # already read (plaintext set when re-read by the same CID)
QUEUED = "queued"  # waiting for a chain key or for the window to reach it
DROPPED = "dropped"  # removed from the queue by a bound; offer it again later
REJECTED = "rejected"  # a queued message failed to open or verify once its key was known
UNREADABLE = "unreadable"  # never decryptable here (before our chain key, or own key unknown)


def derive_next_keys(suite: "Suite", chain_key: bytes, group_pk: bytes) -> "tuple[bytes, bytes]":
    """weshnet deriveNextKeys: (next chain key, message key)."""
    okm = hkdf(suite, SHA256, chain_key, b"", group_pk, 64)
    return okm[:32], okm[32:]


class RatchetEvent:
    """What happened to one message.

    Attributes:
        kind: DECRYPTED, DUPLICATE, QUEUED, DROPPED, REJECTED or UNREADABLE.
        cid: the message id (bytes, the log entry's CID) as given by the caller.
        device_pk, counter: from the message headers.
        plaintext: the application bytes (DECRYPTED; DUPLICATE when re-read), else None.
        metadata: MessageHeaders.metadata (DECRYPTED and DUPLICATE), else None.
        reason: a short explanation for DROPPED, REJECTED, UNREADABLE and DUPLICATE.
    """

    __slots__ = ("cid", "counter", "device_pk", "kind", "metadata", "plaintext", "reason")

    def __init__(
        self,
        kind: str,
        cid: bytes,
        device_pk: bytes,
        counter: int,
        plaintext: "bytes | None" = None,
        metadata: "dict[str, str] | None" = None,
        reason: str = "",
    ) -> None:
        self.kind = kind
        self.cid = cid
        self.device_pk = device_pk
        self.counter = counter
        self.plaintext = plaintext
        self.metadata = metadata
        self.reason = reason

    def __repr__(self) -> str:
        return "RatchetEvent(%s, counter=%d, %s)" % (self.kind, self.counter, self.reason)


class _Pending:
    """A queued message: its id and its opened headers with the still-sealed payload."""

    __slots__ = ("cid", "sealed", "size")

    def __init__(self, cid: bytes, sealed: env.SealedMessage) -> None:
        self.cid = cid
        self.sealed = sealed
        size = len(cid) + len(sealed.ciphertext) + 96 + 64
        for key in sealed.metadata:
            size += len(key) + len(sealed.metadata[key])
        self.size = size


class _Device:
    """Receiving state for one remote device (chain_key None until its key arrives)."""

    __slots__ = ("base", "chain_key", "counter", "keys", "queue")

    def __init__(self) -> None:
        self.chain_key: bytes | None = None
        self.counter = 0  # position of chain_key: keys exist up to here
        self.base = 0  # counter of the chain key we were given; counters <= base are unreadable
        self.keys: dict[int, bytes] = {}
        self.queue: list[_Pending] = []


def _check_u64(name: str, value: int) -> None:
    if value is True or value is False or type(value) is not int or not 0 <= value < _U64:
        raise LocalProtocolError("%s must be an int in [0, 2**64): %r" % (name, value))


class RatchetState:
    """The message-key state of one device in one group.

    Args:
        suite: the crypto suite.
        group_pk: the group public key (HKDF info).
        own_device_pk: our device key in this group (None for a read-only state).
        window: precomputed keys per remote device (weshnet: 100).
        max_queue_per_device, max_queue_total, max_queue_bytes: queue bounds (see module text).
    """

    def __init__(
        self,
        suite: "Suite",
        group_pk: bytes,
        own_device_pk: "bytes | None" = None,
        window: int = WINDOW,
        max_queue_per_device: int = MAX_QUEUE_PER_DEVICE,
        max_queue_total: int = MAX_QUEUE_TOTAL,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
    ) -> None:
        if len(group_pk) != 32:
            raise LocalProtocolError("group public key must be 32 bytes")
        if window < 1 or max_queue_per_device < 1 or max_queue_total < 1 or max_queue_bytes < 1:
            raise LocalProtocolError("window and queue bounds must be positive")
        self.suite = suite
        self.group_pk = bytes(group_pk)
        self.own_device_pk = own_device_pk
        self.window = window
        self.max_queue_per_device = max_queue_per_device
        self.max_queue_total = max_queue_total
        self.max_queue_bytes = max_queue_bytes
        self.own_chain_key: bytes | None = None
        self.own_counter = 0
        self.own_sent: dict[int, bytes] = {}  # counter -> key of own messages not read back yet
        self.devices: dict[bytes, _Device] = {}
        self.read_keys: dict[bytes, tuple[bytes, int, bytes]] = {}  # cid -> (device, counter, mk)
        self.read_by_counter: dict[tuple[bytes, int], bytes] = {}  # (device, counter) -> cid
        self.queue_count = 0
        self.queue_bytes = 0

    # -- own chain ---------------------------------------------------------------------------

    def start_own_chain(self, chain_key: "bytes | None" = None) -> "tuple[bytes, int]":
        """Create our sending chain (random 32-byte key, counter 0), as newDeviceChainKey.

        Returns:
            (chain_key, counter) to share with the members (see own_chain()).
        """
        if self.own_device_pk is None:
            raise LocalProtocolError("a read-only ratchet has no sending chain")
        if self.own_chain_key is not None:
            raise LocalProtocolError("the sending chain already exists")
        if chain_key is None:
            chain_key = self.suite.random_bytes(32)
        if len(chain_key) != 32:
            raise LocalProtocolError("chain key must be 32 bytes")
        self.own_chain_key = bytes(chain_key)
        self.own_counter = 0
        return self.own_chain_key, 0

    def own_chain(self) -> "tuple[bytes, int]":
        """Our current (chain_key, counter): what GroupDeviceChainKeyAdded shares."""
        if self.own_chain_key is None:
            raise LocalProtocolError("no sending chain: call start_own_chain first")
        return self.own_chain_key, self.own_counter

    def next_send_key(self) -> "tuple[int, bytes]":
        """Advance our chain: return (counter n+1, mk(CK_n)) and keep the key for re-reading."""
        chain_key, counter = self.own_chain()
        if counter + 1 >= _U64:
            raise LocalProtocolError("sending counter exhausted")
        next_chain, message_key = derive_next_keys(self.suite, chain_key, self.group_pk)
        self.own_chain_key = next_chain
        self.own_counter = counter + 1
        self.own_sent[counter + 1] = message_key
        return counter + 1, message_key

    def seal(
        self,
        group_secret: bytes,
        device_sk: bytes,
        plaintext: bytes,
        metadata: "dict[str, str] | None" = None,
    ) -> bytes:
        """Seal one application message with our chain; return the MessageEnvelope bytes."""
        if device_sk[32:] != self.own_device_pk:
            raise LocalProtocolError("device secret key does not match own_device_pk")
        counter, message_key = self.next_send_key()
        return env.seal_message(
            self.suite, group_secret, device_sk, counter, message_key, plaintext, metadata
        )

    # -- remote chains -----------------------------------------------------------------------

    def register_chain_key(
        self, device_pk: bytes, chain_key: bytes, counter: int
    ) -> "list[RatchetEvent]":
        """Take a device's chain key (from GroupDeviceChainKeyAdded) and open what it reaches.

        A second key for a device already registered is ignored (weshnet does the same), as is a
        key for our own device.

        Returns:
            Events for queued messages of that device that this key resolves.
        """
        if len(device_pk) != 32 or len(chain_key) != 32:
            raise LocalProtocolError("device key and chain key must be 32 bytes")
        _check_u64("counter", counter)
        if device_pk == self.own_device_pk:
            return []
        device = self.devices.get(device_pk)
        if device is None:
            device = _Device()
            self.devices[device_pk] = device
        if device.chain_key is not None:
            return []
        device.base = counter
        device.counter = counter
        device.chain_key = chain_key
        for _ in range(self.window):
            if device.counter + 1 >= _U64:
                break
            self._derive_one(device)
        return self._drain(device_pk, device)

    def _derive_one(self, device: _Device) -> None:
        assert device.chain_key is not None
        next_chain, message_key = derive_next_keys(self.suite, device.chain_key, self.group_pk)
        device.counter += 1
        device.keys[device.counter] = message_key
        device.chain_key = next_chain

    # -- receiving ---------------------------------------------------------------------------

    def receive_envelope(
        self, cid: bytes, envelope: bytes, group_secret: bytes
    ) -> "list[RatchetEvent]":
        """Open the headers of a MessageEnvelope, then `receive` it.

        Raises:
            IntegrityError: headers, payload or signature do not check.
            RemoteProtocolError: malformed envelope.
        """
        return self.receive(cid, env.open_message_headers(self.suite, group_secret, envelope))

    def receive(self, cid: bytes, sealed: env.SealedMessage) -> "list[RatchetEvent]":
        """Decrypt a message now, or queue it until its key is known.

        Args:
            cid: the message id (the log entry's CID bytes); opaque here.
            sealed: the message with opened headers (envelope.open_message_headers).

        Returns:
            Events: DECRYPTED (then possibly more for queued messages it unlocked), DUPLICATE,
            QUEUED (possibly with DROPPED), DROPPED or UNREADABLE.

        Raises:
            IntegrityError: the key is known but the payload does not open or verify.
        """
        cid = bytes(cid)
        device_pk = sealed.device_pk
        counter = sealed.counter
        known = self.read_keys.get(cid)
        if known is not None:
            if known[0] != device_pk or known[1] != counter:
                raise IntegrityError("message id already read with other headers")
            plaintext = env.open_message_payload(self.suite, sealed, known[2], verify=False)
            return [
                RatchetEvent(
                    DUPLICATE, cid, device_pk, counter, plaintext, sealed.metadata, "re-read"
                )
            ]
        first_cid = self.read_by_counter.get((device_pk, counter))
        if first_cid is not None:
            return [self._replayed(cid, sealed, first_cid)]
        if device_pk == self.own_device_pk:
            own_key = self.own_sent.get(counter)
            if own_key is None:
                return [RatchetEvent(UNREADABLE, cid, device_pk, counter, reason="own key unknown")]
            plaintext = env.open_message_payload(self.suite, sealed, own_key)
            del self.own_sent[counter]
            self._remember(cid, device_pk, counter, own_key)
            return [RatchetEvent(DECRYPTED, cid, device_pk, counter, plaintext, sealed.metadata)]
        device = self.devices.get(device_pk)
        if device is not None and device.chain_key is not None:
            if counter <= device.base:
                return [
                    RatchetEvent(
                        UNREADABLE, cid, device_pk, counter, reason="before the shared chain key"
                    )
                ]
            message_key = device.keys.get(counter)
            if message_key is not None:
                plaintext = env.open_message_payload(self.suite, sealed, message_key)
                self._consume(device, cid, device_pk, counter, message_key)
                events = [
                    RatchetEvent(DECRYPTED, cid, device_pk, counter, plaintext, sealed.metadata)
                ]
                events.extend(self._drain(device_pk, device))
                return events
            if counter <= device.counter:  # key neither waiting nor used: cannot happen
                return [RatchetEvent(UNREADABLE, cid, device_pk, counter, reason="key missing")]
        if device is None:
            device = _Device()
            self.devices[device_pk] = device
        return self._enqueue(device_pk, device, _Pending(cid, sealed))

    def _replayed(self, cid: bytes, sealed: env.SealedMessage, first_cid: bytes) -> RatchetEvent:
        """A (device, counter) already read under `first_cid` arrives under another id."""
        message_key = self.read_keys[first_cid][2]
        plaintext = env.open_message_payload(self.suite, sealed, message_key)
        return RatchetEvent(
            DUPLICATE,
            cid,
            sealed.device_pk,
            sealed.counter,
            plaintext,
            sealed.metadata,
            "same message as " + first_cid.hex(),
        )

    def _remember(self, cid: bytes, device_pk: bytes, counter: int, message_key: bytes) -> None:
        self.read_keys[cid] = (device_pk, counter, message_key)
        self.read_by_counter[(device_pk, counter)] = cid

    def _consume(
        self, device: _Device, cid: bytes, device_pk: bytes, counter: int, message_key: bytes
    ) -> None:
        """postDecryptActions: key by CID, drop the waiting key, derive one more."""
        self._remember(cid, device_pk, counter, message_key)
        del device.keys[counter]
        if device.counter + 1 < _U64:
            self._derive_one(device)

    def _drain(self, device_pk: bytes, device: _Device) -> "list[RatchetEvent]":
        """Open every queued message of `device` its keys now reach (ascending counters)."""
        events: list[RatchetEvent] = []
        keep: list[_Pending] = []
        queue = device.queue
        for index in range(len(queue)):
            item = queue[index]
            sealed = item.sealed
            counter = sealed.counter
            if counter > device.counter:  # sorted: everything after is out of reach too
                keep.extend(queue[index:])
                break
            self.queue_count -= 1
            self.queue_bytes -= item.size
            event = self._open_queued(device_pk, device, item)
            events.append(event)
        device.queue = keep
        return events

    def _open_queued(self, device_pk: bytes, device: _Device, item: _Pending) -> RatchetEvent:
        sealed = item.sealed
        counter = sealed.counter
        cid = item.cid
        if counter <= device.base:
            return RatchetEvent(
                UNREADABLE, cid, device_pk, counter, reason="before the shared chain key"
            )
        try:
            known = self.read_keys.get(cid)
            if known is not None:  # read meanwhile under the same id
                plaintext = env.open_message_payload(self.suite, sealed, known[2], verify=False)
                return RatchetEvent(
                    DUPLICATE, cid, device_pk, counter, plaintext, sealed.metadata, "re-read"
                )
            first_cid = self.read_by_counter.get((device_pk, counter))
            if first_cid is not None:
                return self._replayed(cid, sealed, first_cid)
            message_key = device.keys.get(counter)
            if message_key is None:
                return RatchetEvent(UNREADABLE, cid, device_pk, counter, reason="key missing")
            plaintext = env.open_message_payload(self.suite, sealed, message_key)
        except RemoteProtocolError as exc:  # IntegrityError included
            return RatchetEvent(REJECTED, cid, device_pk, counter, reason=exc.message)
        self._consume(device, cid, device_pk, counter, message_key)
        return RatchetEvent(DECRYPTED, cid, device_pk, counter, plaintext, sealed.metadata)

    # -- the queue ---------------------------------------------------------------------------

    def _enqueue(self, device_pk: bytes, device: _Device, item: _Pending) -> "list[RatchetEvent]":
        sealed = item.sealed
        queue = device.queue
        for queued in queue:
            if queued.cid == item.cid:
                return [RatchetEvent(QUEUED, item.cid, device_pk, sealed.counter, reason="again")]
        sort_key = (sealed.counter, item.cid)
        position = len(queue)
        while (
            position > 0
            and (queue[position - 1].sealed.counter, queue[position - 1].cid) > sort_key
        ):
            position -= 1
        queue.insert(position, item)
        self.queue_count += 1
        self.queue_bytes += item.size
        dropped: list[RatchetEvent] = []
        if len(queue) > self.max_queue_per_device:
            dropped.append(self._drop_highest(device_pk, device, "device queue full"))
        while self.queue_count > self.max_queue_total or self.queue_bytes > self.max_queue_bytes:
            victim_pk = self._longest_queue()
            dropped.append(self._drop_highest(victim_pk, self.devices[victim_pk], "queue full"))
        for event in dropped:
            if event.cid == item.cid and event.device_pk == device_pk:
                return dropped
        events = [RatchetEvent(QUEUED, item.cid, device_pk, sealed.counter)]
        events.extend(dropped)
        return events

    def _drop_highest(self, device_pk: bytes, device: _Device, reason: str) -> RatchetEvent:
        item = device.queue.pop()
        self.queue_count -= 1
        self.queue_bytes -= item.size
        return RatchetEvent(DROPPED, item.cid, device_pk, item.sealed.counter, reason=reason)

    def _longest_queue(self) -> bytes:
        best: bytes | None = None
        best_len = 0
        for device_pk in sorted(self.devices):
            length = len(self.devices[device_pk].queue)
            if length > best_len:
                best, best_len = device_pk, length
        assert best is not None
        return best

    def queued(self, device_pk: "bytes | None" = None) -> "list[tuple[bytes, bytes, int]]":
        """(cid, device_pk, counter) of queued messages, in (device, counter) order."""
        out = []
        for pk in sorted(self.devices):
            if device_pk is not None and pk != device_pk:
                continue
            for item in self.devices[pk].queue:
                out.append((item.cid, pk, item.sealed.counter))
        return out

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> "dict[str, Any]":
        """The whole state as a plain dict (str keys; bytes, int, str, list, None values)."""
        devices = []
        for pk in sorted(self.devices):
            device = self.devices[pk]
            devices.append(
                {
                    "device_pk": pk,
                    "chain_key": device.chain_key,
                    "counter": device.counter,
                    "base": device.base,
                    "keys": [[c, device.keys[c]] for c in sorted(device.keys)],
                    "queue": [
                        [
                            item.cid,
                            item.sealed.counter,
                            item.sealed.sig,
                            [[k, item.sealed.metadata[k]] for k in sorted(item.sealed.metadata)],
                            item.sealed.ciphertext,
                        ]
                        for item in device.queue
                    ],
                }
            )
        return {
            "version": STATE_VERSION,
            "group_pk": self.group_pk,
            "own_device_pk": self.own_device_pk,
            "window": self.window,
            "max_queue_per_device": self.max_queue_per_device,
            "max_queue_total": self.max_queue_total,
            "max_queue_bytes": self.max_queue_bytes,
            "own_chain_key": self.own_chain_key,
            "own_counter": self.own_counter,
            "own_sent": [[c, self.own_sent[c]] for c in sorted(self.own_sent)],
            "devices": devices,
            "read_keys": [
                [cid, self.read_keys[cid][0], self.read_keys[cid][1], self.read_keys[cid][2]]
                for cid in sorted(self.read_keys)
            ],
        }

    @classmethod
    def from_dict(cls, suite: "Suite", data: "dict[str, Any]") -> "RatchetState":
        """Rebuild a state saved with to_dict().

        Raises:
            LocalProtocolError: the dict is not a state of a known version.
        """
        try:
            if data["version"] != STATE_VERSION:
                raise LocalProtocolError("ratchet state version %r" % (data["version"],))
            state = cls(
                suite,
                data["group_pk"],
                data["own_device_pk"],
                data["window"],
                data["max_queue_per_device"],
                data["max_queue_total"],
                data["max_queue_bytes"],
            )
            state.own_chain_key = data["own_chain_key"]
            state.own_counter = data["own_counter"]
            state.own_sent = dict(data["own_sent"])
            for saved in data["devices"]:
                device = _Device()
                device.chain_key = saved["chain_key"]
                device.counter = saved["counter"]
                device.base = saved["base"]
                device.keys = dict(saved["keys"])
                pk = saved["device_pk"]
                for cid, counter, sig, pairs, ciphertext in saved["queue"]:
                    metadata = dict(pairs)
                    item = _Pending(cid, env.SealedMessage(counter, pk, sig, metadata, ciphertext))
                    device.queue.append(item)
                    state.queue_count += 1
                    state.queue_bytes += item.size
                state.devices[pk] = device
            for cid, pk, counter, message_key in data["read_keys"]:
                state._remember(cid, pk, counter, message_key)
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalProtocolError("bad ratchet state: %r" % (exc,)) from exc
        return state
