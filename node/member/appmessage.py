"""Berty's application layer: AppMessage inside EncryptedMessage.plaintext.

Field numbers are those of berty/berty api/messengertypes/messengertypes.proto
(package berty.messenger.v1), read from the stored copy:

    AppMessage  { Type type = 1; bytes payload = 2; int64 sent_date = 3; string target_cid = 5 }
    Type        UserMessage = 1, GroupInvitation = 3, SetGroupInfo = 4, SetUserInfo = 5, ...
    UserMessage { string body = 1 }
    SetUserInfo { string display_name = 1 }

sent_date is written in milliseconds since the Unix epoch. We write UserMessage in the messages
log and SetUserInfo in the metadata log (inside GroupMetadataPayloadSent, weshnet's
AppMetadataSend), so that members who join later still learn everyone's name.
"""

from typing import Any

from node.crypto import protobuf as pb

TYPE_UNDEFINED = 0
TYPE_USER_MESSAGE = 1
TYPE_GROUP_INVITATION = 3
TYPE_SET_GROUP_INFO = 4
TYPE_SET_USER_INFO = 5
TYPE_ACKNOWLEDGE = 6

APP_MESSAGE = pb.Schema(
    "AppMessage",
    [
        pb.Field(1, "type", pb.ENUM),
        pb.Field(2, "payload", pb.BYTES),
        pb.Field(3, "sent_date", pb.INT64),
        pb.Field(5, "target_cid", pb.STRING),
    ],
)
USER_MESSAGE = pb.Schema("AppMessage.UserMessage", [pb.Field(1, "body", pb.STRING)])
SET_USER_INFO = pb.Schema("AppMessage.SetUserInfo", [pb.Field(1, "display_name", pb.STRING)])


class AppMessage:
    """A decoded AppMessage.

    Attributes:
        type: the AppMessage.Type number.
        sent_date: milliseconds since the epoch, as the sender claims.
        body: the text for UserMessage; the display name for SetUserInfo; else "".
    """

    __slots__ = ("body", "sent_date", "type")

    def __init__(self, type: int, sent_date: int, body: str) -> None:
        self.type = type
        self.sent_date = sent_date
        self.body = body

    def __repr__(self) -> str:
        return "AppMessage(type=%d, sent_date=%d)" % (self.type, self.sent_date)


def _encode(kind: int, payload: bytes, sent_date_ms: int) -> bytes:
    values: dict[str, Any] = {"type": kind, "payload": payload, "sent_date": sent_date_ms}
    return pb.encode(APP_MESSAGE, values)


def user_message(body: str, sent_date_ms: int) -> bytes:
    """AppMessage{type = UserMessage, payload = UserMessage{body}, sent_date}."""
    return _encode(TYPE_USER_MESSAGE, pb.encode(USER_MESSAGE, {"body": body}), sent_date_ms)


def set_user_info(display_name: str, sent_date_ms: int) -> bytes:
    """AppMessage{type = SetUserInfo, payload = SetUserInfo{display_name}, sent_date}."""
    payload = pb.encode(SET_USER_INFO, {"display_name": display_name})
    return _encode(TYPE_SET_USER_INFO, payload, sent_date_ms)


def decode(data: bytes) -> AppMessage:
    """Decode an AppMessage; the body is filled for UserMessage and SetUserInfo.

    Raises:
        RemoteProtocolError: malformed protobuf.
    """
    outer = pb.decode(APP_MESSAGE, data)
    kind = outer["type"]
    body = ""
    if kind == TYPE_USER_MESSAGE:
        body = pb.decode(USER_MESSAGE, outer["payload"])["body"]
    elif kind == TYPE_SET_USER_INFO:
        body = pb.decode(SET_USER_INFO, outer["payload"])["display_name"]
    return AppMessage(kind, outer["sent_date"], body)
