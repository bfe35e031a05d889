"""The TCP transport behind the seam (node/lan/tcp.py): listener, dialer, LinkQueue, Dialers.

Real sockets on the loopback interface, ports picked by the kernel.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from node.errors import LinkError
from node.lan.address import HostPort
from node.lan.tcp import TcpDialer, TcpListener, tcp_address
from node.link import Dialers, Link, LinkQueue, PeerAddress

MAX_FRAME = 65535


async def _echo_once(queue: LinkQueue) -> None:
    link = await queue.get()
    frame = await link.recv()
    assert frame is not None
    await link.send([frame[::-1]])
    await link.close()


async def _listen(listener: TcpListener, queue: LinkQueue) -> asyncio.Task[None]:
    listener.open()
    task = asyncio.create_task(listener.serve(queue))
    await asyncio.sleep(0)  # let serve() start its servers
    return task


def test_listens_on_ipv4_and_ipv6_on_one_port_and_dials_both() -> None:
    async def scenario() -> list[tuple[str, str, int, bytes | None]]:
        listener = TcpListener([HostPort("127.0.0.1", 0), HostPort("::1", 0)], MAX_FRAME)
        queue = LinkQueue(4)
        serving = await _listen(listener, queue)
        bound = listener.bound
        assert [b.host for b in bound] == ["127.0.0.1", "::1"]
        assert bound[0].port == bound[1].port == listener.port != 0
        dialers = Dialers([TcpDialer(MAX_FRAME)])
        results = []
        for host in ("127.0.0.1", "::1"):
            address = tcp_address(host, listener.port)
            link: Link = await dialers.dial(address, 5.0)
            echo = asyncio.create_task(_echo_once(queue))
            await link.send([b"abc" + host.encode()])
            reply = await link.recv()
            await echo
            results.append((link.kind, str(address), link.frame_hint, reply))
            await link.close()
        serving.cancel()
        return results

    port_free = asyncio.run(scenario())
    assert [r[0] for r in port_free] == ["tcp", "tcp"]
    assert port_free[0][1].startswith("tcp:127.0.0.1:")
    assert port_free[1][1].startswith("tcp:[::1]:")
    assert [r[2] for r in port_free] == [65535, 65535]
    assert port_free[0][3] == b"1.0.0.721cba" and port_free[1][3] == b"1::cba"


def test_accepted_links_carry_kind_label_and_hint() -> None:
    async def scenario() -> tuple[str, str, int, int]:
        listener = TcpListener([HostPort("127.0.0.1", 0)], MAX_FRAME, frame_hint=512)
        queue = LinkQueue(1)
        serving = await _listen(listener, queue)
        client = await TcpDialer(MAX_FRAME).dial(
            PeerAddress("tcp", "127.0.0.1:%d" % listener.port), 5.0
        )
        accepted = await queue.get()
        local = client._writer.get_extra_info("sockname")
        await client.close()
        await accepted.close()
        serving.cancel()
        return accepted.kind, accepted.label, accepted.frame_hint, local[1]

    kind, label, hint, client_port = asyncio.run(scenario())
    assert (kind, hint) == ("tcp", 512)
    assert label == "tcp:127.0.0.1:%d" % client_port


def test_an_interface_name_listens_on_each_of_its_addresses() -> None:
    listener = TcpListener([HostPort("lo", 0)], MAX_FRAME)
    listener.open()
    try:
        hosts = sorted(b.host for b in listener.bound)
        ports = {b.port for b in listener.bound}
    finally:
        listener.close()
    assert "127.0.0.1" in hosts
    assert len(ports) == 1


def test_a_name_that_is_neither_interface_nor_host_is_one_clear_error() -> None:
    listener = TcpListener([HostPort("no-such-if-seam.invalid", 0)], MAX_FRAME)
    with pytest.raises(LinkError, match=r"no-such-if-seam\.invalid is neither a network interface"):
        listener.open()


def test_a_taken_port_fails_before_anything_is_served_and_releases_the_rest() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listener = TcpListener([HostPort("::1", port), HostPort("127.0.0.1", port)], MAX_FRAME)
        with pytest.raises(LinkError, match="cannot listen on 127.0.0.1:%d" % port):
            listener.open()
        assert listener.bound == []  # the IPv6 socket bound first was closed again


def test_a_full_queue_closes_the_newcomer_and_counts_it() -> None:
    async def scenario() -> tuple[bytes | None, int]:
        listener = TcpListener([HostPort("127.0.0.1", 0)], MAX_FRAME)
        queue = LinkQueue(1)
        serving = await _listen(listener, queue)
        dialer = TcpDialer(MAX_FRAME)
        address = tcp_address("127.0.0.1", listener.port)
        first = await dialer.dial(address, 5.0)
        second = await dialer.dial(address, 5.0)
        ended = await second.recv()  # the listener closed it: EOF, not a hang
        waiting = await queue.get()
        await waiting.close()
        for link in (first, second):
            await link.close()
        serving.cancel()
        return ended, queue.refused

    assert asyncio.run(scenario()) == (None, 1)


def test_dialers_pick_by_kind_and_say_what_is_missing() -> None:
    async def scenario() -> None:
        dialers = Dialers([TcpDialer(MAX_FRAME)])
        assert dialers.kinds == ["tcp"]
        with pytest.raises(LinkError, match="no ble transport"):
            await dialers.dial(PeerAddress("ble", "AA:BB:CC:DD:EE:FF"), 1.0)
        with socket.socket() as probe:  # bound, never listening: refused
            probe.bind(("127.0.0.1", 0))
            address = tcp_address("127.0.0.1", probe.getsockname()[1])
            with pytest.raises(LinkError, match="Connection refused"):
                await dialers.dial(address, 5.0)
        with pytest.raises(LinkError, match="cannot dial"):
            await dialers.dial(PeerAddress("tcp", "no-port"), 1.0)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp:127.0.0.1:4740", PeerAddress("tcp", "127.0.0.1:4740")),
        ("127.0.0.1:4740", PeerAddress("tcp", "127.0.0.1:4740")),
        ("[::1]:9", PeerAddress("tcp", "[::1]:9")),
        ("ble:hci0/AA:BB", PeerAddress("ble", "hci0/AA:BB")),
    ],
)
def test_peer_address_parse(text: str, expected: PeerAddress) -> None:
    assert PeerAddress.parse(text) == expected
    assert str(expected) == (text if text.split(":")[0] in ("tcp", "ble") else "tcp:" + text)


def test_nothing_tcp_specific_outside_node_lan() -> None:
    """The daemon and the rest of node/ know links, never sockets (issue 8 §1)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "node"
    banned = ("StreamReader", "StreamWriter", "open_connection", "start_server")
    # The operator's local control socket (DATA/control.sock) is no peer transport: it carries
    # JSON lines between the daemon and `waystation status`, never a session.
    not_links = {Path("app/control.py")}
    found = [
        "%s: %s" % (path.relative_to(root), name)
        for path in sorted(root.rglob("*.py"))
        if "lan" not in path.relative_to(root).parts and path.relative_to(root) not in not_links
        for name in banned
        if name in path.read_text()
    ]
    assert not found, found
