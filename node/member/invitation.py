"""Group invitations a person can paste: "waystation:invite:" + base64url(BertyLink).

The bytes are Berty's own link message (berty/berty api/messengertypes/messengertypes.proto and
weshnet protocoltypes.proto, field numbers from the stored copies):

    BertyLink  { Kind kind = 1 (GroupV1Kind = 2); BertyGroup berty_group = 3 }
    BertyGroup { weshnet.protocol.v1.Group group = 1; string display_name = 2 }
    Group      { public_key = 1; secret = 2; secret_sig = 3; group_type = 4; sign_pub = 5;
                 link_key = 6; link_key_sig = 7 }

base64url without padding. Like Berty's group links, an invitation CARRIES THE GROUP SECRET:
whoever holds it can read every message written after they join and can write to the group.
Share it only with the people you invite, over a channel you trust. A joiner checks the record
(Group.check: secret_sig and link_key_sig by the group key, sign_pub and link_key derived from the
secret) before using it.
"""

import base64
import binascii

from node.crypto import protobuf as pb
from node.crypto.api import Suite
from node.crypto.keys import GROUP_TYPE_MULTI_MEMBER, Group
from node.errors import RemoteProtocolError
from node.member.errors import MemberError

PREFIX = "waystation:invite:"
KIND_GROUP_V1 = 2
MAX_INVITATION_CHARS = 4096

GROUP = pb.Schema(
    "Group",
    [
        pb.Field(1, "public_key", pb.BYTES),
        pb.Field(2, "secret", pb.BYTES),
        pb.Field(3, "secret_sig", pb.BYTES),
        pb.Field(4, "group_type", pb.ENUM),
        pb.Field(5, "sign_pub", pb.BYTES),
        pb.Field(6, "link_key", pb.BYTES),
        pb.Field(7, "link_key_sig", pb.BYTES),
    ],
)
BERTY_GROUP = pb.Schema(
    "BertyGroup",
    [pb.Field(1, "group", pb.MESSAGE, message=GROUP), pb.Field(2, "display_name", pb.STRING)],
)
BERTY_LINK = pb.Schema(
    "BertyLink",
    [pb.Field(1, "kind", pb.ENUM), pb.Field(3, "berty_group", pb.MESSAGE, message=BERTY_GROUP)],
)


def encode_invitation(group: Group, name: str) -> str:
    """The invitation text for a multi-member group and its display name."""
    record = {
        "public_key": group.public_key,
        "secret": group.secret,
        "secret_sig": group.secret_sig,
        "group_type": group.group_type,
        "sign_pub": group.sign_pub,
        "link_key": group.link_key,
        "link_key_sig": group.link_key_sig,
    }
    link = pb.encode(
        BERTY_LINK,
        {"kind": KIND_GROUP_V1, "berty_group": {"group": record, "display_name": name}},
    )
    return PREFIX + base64.urlsafe_b64encode(link).rstrip(b"=").decode("ascii")


def decode_invitation(suite: Suite, text: str) -> tuple[Group, str]:
    """Parse and check an invitation.

    Returns:
        (group, display name).

    Raises:
        MemberError: not an invitation, malformed, or the group record does not check.
    """
    text = "".join(text.split())  # pasted text may be wrapped
    if not text.startswith(PREFIX):
        raise MemberError("not a Waystation invitation (it must start with %r)" % PREFIX)
    if len(text) > MAX_INVITATION_CHARS:
        raise MemberError("invitation too long (%d characters)" % len(text))
    body = text[len(PREFIX) :]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise MemberError("invitation is not valid base64url") from None
    try:
        link = pb.decode(BERTY_LINK, raw)
    except RemoteProtocolError as exc:
        raise MemberError("invitation is damaged: %s" % exc.message) from None
    berty_group = link["berty_group"]
    if link["kind"] != KIND_GROUP_V1 or berty_group is None or berty_group["group"] is None:
        raise MemberError("invitation does not carry a group")
    record = berty_group["group"]
    if record["group_type"] != GROUP_TYPE_MULTI_MEMBER:
        raise MemberError("invitation is not for a multi-member group")
    if len(record["public_key"]) != 32 or len(record["secret"]) != 32:
        raise MemberError("invitation group key or secret has the wrong size")
    group = Group.build(
        suite,
        record["public_key"],
        record["secret"],
        GROUP_TYPE_MULTI_MEMBER,
        secret_sig=record["secret_sig"],
        link_key_sig=record["link_key_sig"],
    )
    if record["sign_pub"] and record["sign_pub"] != group.sign_pub:
        raise MemberError("invitation does not check: sign_pub is not derived from the secret")
    if record["link_key"] and record["link_key"] != group.link_key:
        raise MemberError("invitation does not check: link_key is not derived from the secret")
    try:
        group.check(suite)
    except RemoteProtocolError as exc:
        raise MemberError("invitation does not check: %s" % exc.message) from None
    return group, berty_group["display_name"]
