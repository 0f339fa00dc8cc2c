"""The emulator over real HTTP on 127.0.0.1: thread mode, process mode, the wire itself."""

from __future__ import annotations

import concurrent.futures
import socket

import attrs
import httpx
import pytest

import databricks_access as da
from databricks_access.testing import (
    Behaviour,
    FakeAccount,
    FakeRequest,
    Fault,
    FaultPlan,
    OperationClass,
    ServedAccount,
)

from .conftest import Clock, add_members

META = "/.well-known/databricks-config"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _exchange(url: str, raw: bytes, *, replies: int = 1) -> list[bytes]:
    """Send raw bytes on one connection and read `replies` responses (by Content-Length)."""
    out: list[bytes] = []
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
        sock.sendall(raw)
        buffer = b""
        while len(out) < replies:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    return [*out, buffer] if buffer else out
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            out.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
    return out


def _closed_after(url: str, raw: bytes) -> tuple[bytes, bool]:
    """Send one request and read until the server closes (or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return data, False
        return data, True


# ---- thread mode ------------------------------------------------------------------------


def test_thread_mode_answers_as_the_loopback_host(fake):
    original = fake.host
    server = fake.serve()
    assert isinstance(server, ServedAccount)
    with pytest.raises(RuntimeError, match="not being served"):
        _ = server.url
    with server as url:
        assert url.startswith("http://127.0.0.1:")
        assert url == server.url == fake.host
        reply = httpx.get(f"{url}{META}")
        assert reply.status_code == 200
        assert reply.json()["oidc_endpoint"] == f"{url}/oidc/accounts/{fake.account_id}"
        discovery = httpx.get(
            f"{url}/oidc/accounts/{fake.account_id}/.well-known/oauth-authorization-server"
        )
        assert discovery.json()["token_endpoint"].startswith(url)
        assert float(reply.headers["x-fake-server-time"]) >= 0
        assert int(reply.headers["content-length"]) == len(reply.content)
        assert "thread" in repr(server)
    assert fake.host == original
    assert fake.counts[OperationClass.META] == 2
    server.stop()  # stopping twice is harmless


def test_keep_alive_and_pipelining_on_one_connection(fake):
    with fake.serve() as url:
        one = f"GET {META} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        replies = _exchange(url, one * 3, replies=3)
    assert len(replies) == 3
    assert all(r.startswith(b"HTTP/1.1 200 OK\r\n") for r in replies)
    assert all(b"connection: close" not in r.lower() for r in replies)
    assert fake.counts[OperationClass.META] == 3


def test_connection_close_and_http_1_0_close_the_connection(fake):
    with fake.serve() as url:
        data, closed = _closed_after(
            url, f"GET {META} HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
        )
        assert closed and data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data
        data, closed = _closed_after(url, f"GET {META} HTTP/1.0\r\n\r\n".encode())
        assert closed and b"Connection: close" in data


def test_request_bodies_by_length_and_chunked(fake):
    fake.require_auth = False
    user = fake.add_user("a@example.com")
    group = fake.add_group("g")
    other = fake.add_group("h")
    body = (
        b'{"Operations":[{"op":"add","path":"members","value":[{"value":"%s"}]}]}' % user.encode()
    )
    with fake.serve() as url:
        by_length = (
            f"PATCH {fake.scim_path}/Groups/{group} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\nExpect: 100-continue\r\n\r\n"
        ).encode() + body
        chunked = (
            f"PATCH {fake.scim_path}/Groups/{other} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode() + b"%x;ext=1\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n" % (len(body), body)
        replies = _exchange(url, by_length + chunked, replies=3)
    assert replies[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert replies[1].startswith(b"HTTP/1.1 200 ")
    assert replies[2].startswith(b"HTTP/1.1 200 ")
    assert fake.group_members(group) == fake.group_members(other) == {user}


def test_no_body_statuses_and_head(fake):
    fake.require_auth = False
    fake.behaviour = attrs.evolve(fake.behaviour, patch_status=204)
    group = fake.add_group("g")
    with fake.serve() as url:
        reply = httpx.patch(f"{url}{fake.scim_path}/Groups/{group}", json=add_members())
        assert reply.status_code == 204
        assert "content-length" not in reply.headers
        assert reply.content == b""
        head = httpx.head(f"{url}{META}")
        assert head.status_code == 404  # the account serves no HEAD; still no body
        assert head.content == b""


@pytest.mark.parametrize(
    "raw",
    [
        b"NONSENSE\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
    ],
)
def test_malformed_requests_get_400_and_a_close(fake, raw):
    with fake.serve() as url:
        data, closed = _closed_after(url, raw)
    assert closed
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert sum(fake.counts.values()) == 0


def test_a_client_going_away_mid_request_does_not_disturb_the_server(fake):
    with fake.serve() as url:
        with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort")
        with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost")
        assert httpx.get(f"{url}{META}").status_code == 200


def test_concurrent_clients(fake):
    fake.require_auth = False
    users = [fake.add_user(f"u{i}@example.com") for i in range(40)]
    group = fake.add_group("g")

    def grant(chunk: list[str], url: str) -> list[int]:
        with httpx.Client(base_url=url) as client:
            return [
                client.patch(f"{fake.scim_path}/Groups/{group}", json=add_members(u)).status_code
                for u in chunk
            ]

    with fake.serve() as url, concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(grant, [users[i::8] for i in range(8)], [url] * 8))
    assert [s for chunk in statuses for s in chunk] == [200] * 40
    assert fake.group_members(group) == set(users)
    assert fake.counts[OperationClass.PATCH] == 40


def test_the_served_log_has_perf_times(clock: Clock):
    ticks = iter(float(i) for i in range(100))
    fake = FakeAccount(clock=clock, timer=lambda: next(ticks))
    with fake.serve() as url:
        httpx.get(f"{url}{META}")
    (record,) = fake.log
    assert record.perf_finished > record.perf_started


def test_emulator_failures_are_500_and_raised_at_stop(fake):
    def broken(request: FakeRequest) -> None:
        raise ZeroDivisionError

    fake.interceptor = broken
    server = fake.serve()
    url = server.start()
    try:
        reply = httpx.get(f"{url}{META}")
        assert reply.status_code == 500
        assert reply.text == "emulator error"
    finally:
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            server.stop()


def test_start_twice_and_bad_port(fake):
    with pytest.raises(ValueError, match="port"):
        fake.serve(port=70000)
    server = fake.serve()
    with server:
        with pytest.raises(RuntimeError, match="already"):
            server.start()


def test_handle_reaches_the_shared_account_in_thread_mode(fake):
    user = fake.add_user("a@example.com")
    group = fake.add_group("g", members=[user])
    server = fake.serve()
    with server as url:
        httpx.get(f"{url}{META}")
        assert server.group_members(group) == {user}
        assert server.groups_of(user) == {group}
        assert server.counts[OperationClass.META] == 1
        assert len(server.log) == 1
        assert server.faults == {}
        assert server.call("find_user", "a@example.com") == user
        server.sync()  # nothing to copy: the account is shared
        server.reset_log()
        assert fake.log == ()
    assert server.call("find_group", "g") == group  # after stop: the account itself


def test_our_client_over_loopback(fake):
    creds = fake.add_service_principal("connector")
    user = fake.add_user("alice@example.com")
    group = fake.add_group("readers")
    with fake.serve() as url:
        config = da.AccountConfig(
            host=url,
            account_id=fake.account_id,
            allow_custom_host=True,
            allow_insecure_http=True,
        )
        secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
        with da.AccountClient(config, secrets=secrets) as client:
            client.groups.add_members(group, [user])
            assert [m.id for m in client.groups.members(group)] == [user]
    assert fake.group_members(group) == {user}
    assert fake.counts[OperationClass.TOKEN] == 1


# ---- process mode -----------------------------------------------------------------------


def test_process_mode_serves_a_copy_and_brings_its_state_back(clock: Clock):
    fake = FakeAccount(clock=clock)
    user = fake.add_user("alice@example.com")
    group = fake.add_group("readers")
    token = fake.static_token()
    server = fake.serve(process=True)
    assert "process" in repr(server)
    with server as url:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers) as http:
            reply = http.patch(f"{fake.scim_path}/Groups/{group}", json=add_members(user))
            assert reply.status_code == 200
            assert http.get(META).json()["host"] == url
        # The live account is in the child: the handle reaches it.
        assert server.group_members(group) == {user}
        assert server.groups_of(user) == {group}
        assert server.counts[OperationClass.PATCH] == 1
        assert [r.method for r in server.log] == ["PATCH", "GET"]
        assert fake.group_members(group) == frozenset()  # the parent's copy, as at start
        other = server.call("add_user", "bob@example.com")
        with pytest.raises(ValueError, match="No group"):
            server.call("group_members", "nope")
        server.sync()
        assert fake.group_members(group) == {user}
        assert fake.find_user("bob@example.com") == other
    # Stopped: the final state, log and counts are back, and the host is ours again.
    assert fake.group_members(group) == {user}
    assert fake.counts == {OperationClass.PATCH: 1, OperationClass.META: 1}
    assert fake.host == "https://accounts.cloud.databricks.com"
    assert fake._state.clock is clock  # the adopted state reads the parent's clock
    clock.advance(10)
    assert fake.dispatch("GET", META).status == 200


def test_process_mode_runs_a_fault_plan_and_logs_its_faults():
    fake = FakeAccount(require_auth=False)
    FaultPlan([Fault.server_error(503, retry_after=1, nth=2)]).install(fake)
    server = fake.serve(process=True)
    with server as url:
        statuses = [httpx.get(f"{url}{META}").status_code for _ in range(3)]
        assert server.faults == {"503": 1}
    assert statuses == [200, 503, 200]
    assert fake.faults == {"503": 1}
    assert [r.fault for r in fake.log] == [None, "503", None]


def test_process_mode_needs_a_picklable_account():
    fake = FakeAccount(clock=lambda: 0.0)
    with pytest.raises(TypeError, match="picklable"):
        fake.serve(process=True).start()


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_a_server_that_cannot_start_says_so(process):
    fake = FakeAccount()
    with socket.socket() as taken:  # a taken port: binding fails
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = fake.serve(process=process, port=port)
        with pytest.raises(RuntimeError, match="did not start"):
            server.start()
    assert fake.host == "https://accounts.cloud.databricks.com"
    server.stop()  # nothing to stop


def test_process_mode_keeps_the_behaviour():
    # Behaviour travels with the account; the answer is computed in the child.
    fake = FakeAccount(require_auth=False, behaviour=Behaviour(page_cap=2))
    for i in range(5):
        fake.add_user(f"u{i}@example.com")
    with fake.serve(process=True) as url:
        page = httpx.get(f"{url}{fake.scim_path}/Users").json()
    assert len(page["Resources"]) == 2
    assert page["totalResults"] == 5


def test_thread_server_stops_with_connections_open(fake):
    with fake.serve() as url:
        sock = socket.create_connection(("127.0.0.1", _port(url)), timeout=5)
        sock.sendall(f"GET {META} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # The server closed the idle keep-alive connection on its way out.
    assert sock.recv(65536) == b""
    sock.close()
