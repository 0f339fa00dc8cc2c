"""The emulator served over real HTTP/1.1 on 127.0.0.1, in a thread or in a child process.

One small asyncio server does both: it parses requests itself (request line, headers,
`Content-Length` or chunked bodies, keep-alive, pipelining in order), hands each to
`FakeAccount.dispatch`, and writes the answer with a `Content-Length` (never chunked),
so `requests`/urllib3 (the official SDK) and httpx both keep their connections alive.
Injected faults play out on the socket: latency is awaited (other connections go on),
a dropped connection is closed unanswered, a held one stays silent, then closes.

- Thread mode runs the server's event loop in a daemon thread; the account is shared,
  so the test inspects it directly.
- Process mode starts a fresh interpreter (`sys.executable -c ...`: nothing is forked,
  which is unsafe in a parent with threads running and warned about by Python 3.12, and
  unlike multiprocessing's `spawn` the caller's main module is not re-imported, so it
  works from scripts without a `__main__` guard, from `-c` and from notebooks). The
  account is pickled to it over a socket pair; the child serves from its main thread,
  answers control calls from the parent on another, and sends its final state back when
  told to stop. POSIX only (it passes the socket as a file descriptor).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from types import TracebackType
from typing import TYPE_CHECKING, Any

from databricks_access.testing._http import ConnectionFault, FakeResponse, HoldConnection
from databricks_access.testing._log import RequestRecord
from databricks_access.testing._routing import OperationClass

if TYPE_CHECKING:
    from databricks_access.testing._account import FakeAccount

__all__ = ["ServedAccount"]

_LOOPBACK = "127.0.0.1"
_HEAD_LIMIT = 1 << 20  # request line and headers; far above any real client's
_BODY_LIMIT = 64 << 20
_STOP_TIMEOUT = 30.0
_NO_BODY = frozenset({204, 304})
_SET_BY_SERVER = frozenset({"content-length", "connection", "transfer-encoding"})
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}

Dispatch = Callable[[str, str, Mapping[str, str], bytes], FakeResponse]


class _BadRequest(Exception):  # noqa: N818 - a control-flow signal: answer 400 and close
    pass


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {token.strip().lower() for token in connection.split(",")}
    if version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    size_total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        digits = line.split(b";", 1)[0].strip()
        if not digits or digits.strip(b"0123456789abcdefABCDEF"):
            raise _BadRequest
        size = int(digits, 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        size_total += size
        if size_total > _BODY_LIMIT:
            raise _BadRequest
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequest


class _HttpServer:
    """A minimal HTTP/1.1 server in front of one dispatch function (one event loop)."""

    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors: list[str] = []
        """Emulator failures (tracebacks) met while serving; answered as 500."""

    async def run(self, port: int, ready: Callable[[int], None], stop: asyncio.Event) -> None:
        """Listen on 127.0.0.1, call `ready(port)`, serve until `stop` is set, clean up."""
        server = await asyncio.start_server(self._connection, _LOOPBACK, port, limit=_HEAD_LIMIT)
        try:
            ready(server.sockets[0].getsockname()[1])
            await stop.wait()
        finally:
            server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except _BadRequest:
            with contextlib.suppress(ConnectionError):
                writer.write(_head(400, [("Content-Length", "0"), ("Connection", "close")]))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, or sent garbage: nobody to answer
        except asyncio.CancelledError:
            # Shutting down. End normally: asyncio's stream callback (3.11) calls
            # `task.exception()`, which raises on a cancelled task.
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request, answer it; returns whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _BadRequest from None
            return False  # a clean close between requests
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _BadRequest
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _BadRequest from None
            if not 0 <= length <= _BODY_LIMIT:
                raise _BadRequest
            body = await reader.readexactly(length) if length else b""
        keep_alive = _keep_alive(version, headers.get("connection", ""))

        started = time.perf_counter()
        try:
            response = self._dispatch(method, target, headers, body)
        except HoldConnection as hold:
            await asyncio.sleep(hold.seconds)
            return False
        except ConnectionFault:
            writer.transport.abort()
            return False
        except Exception:  # noqa: BLE001 - an emulator bug: report it, keep serving
            self.errors.append(traceback.format_exc())
            response = FakeResponse(500, (("content-type", "text/plain"),), b"emulator error")
            keep_alive = False
        elapsed = time.perf_counter() - started

        status = response.status
        out = [(n, v) for n, v in response.headers if n.lower() not in _SET_BY_SERVER]
        body_out = response.body
        if status in _NO_BODY or status < 200:
            body_out = b""
        else:
            out.append(("Content-Length", str(len(body_out))))
        if method == "HEAD":
            body_out = b""
        out.append(("X-Fake-Server-Time", f"{elapsed:.6f}"))
        if not keep_alive:
            out.append(("Connection", "close"))
        if response.delay > 0:
            await asyncio.sleep(response.delay)
        writer.write(_head(status, out) + body_out)
        await writer.drain()
        return keep_alive


def _parse_ready(message: object) -> int:
    if isinstance(message, tuple) and len(message) == 2 and message[0] == "ready":
        port = message[1]
        if isinstance(port, int):
            return port
    raise RuntimeError(f"The emulator's server did not start: {message!r}")


class _ThreadRunner:
    """The server's event loop in a daemon thread, on the shared account."""

    def __init__(self, account: FakeAccount) -> None:
        self._account = account
        self._server = _HttpServer(account.dispatch)
        self._ready = threading.Event()
        self._port: int | None = None
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._requested_port = 0
        self._thread = threading.Thread(target=self._main, name="fake-account-http", daemon=True)

    def start(self, port: int, timeout: float) -> int:
        self._requested_port = port
        self._thread.start()
        if not self._ready.wait(timeout) or self._port is None:
            self.stop()
            raise RuntimeError("The emulator's server did not start.") from self._failure
        return self._port

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def ready(port: int) -> None:
            self._port = port
            self._ready.set()

        await self._server.run(self._requested_port, ready, self._stop)

    def stop(self) -> list[str]:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread.ident is not None:
            self._thread.join(_STOP_TIMEOUT)
        return self._server.errors

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return getattr(self._account, name)(*args, **kwargs)


class _ProcessRunner:
    """The server in a fresh interpreter, driven over a socket pair."""

    def __init__(self, account: FakeAccount) -> None:
        self._account = account
        self._lock = threading.Lock()
        try:
            self._blob = account._dumps()  # the account's own serialisation
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(
                "serve(process=True) sends the account to another process, so its clock, timer "
                f"and interceptor must be picklable (module-level functions or objects): {exc}"
            ) from exc
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def start(self, port: int, timeout: float) -> int:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            code = (
                f"import sys; sys.path[:0] = {sys.path!r}; "
                "from databricks_access.testing._server import _child_main; "
                f"_child_main({theirs.fileno()})"
            )
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
            )
            self._conn = Connection(os.dup(ours.fileno()))
        self._conn.send((self._blob, port))
        self._blob = b""
        message: object = f"no answer within {timeout} s"
        try:
            if self._conn.poll(timeout):
                message = self._conn.recv()
        except (EOFError, OSError):
            message = f"the process exited (exit code {self._process.wait(_STOP_TIMEOUT)})"
        if isinstance(message, tuple) and message[:1] == ("ready",):
            return _parse_ready(message)
        self._kill(wait=0.0)
        raise RuntimeError(f"The emulator's server process did not start: {message!r}")

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._conn is None:
            raise RuntimeError("The account is not being served.")
        with self._lock:
            self._conn.send(("call", name, args, kwargs))
            kind, value = self._conn.recv()
        if kind == "error":
            raise value
        return value

    def dump(self) -> FakeAccount:
        blob: bytes = self.call("_dumps", (), {})
        account: FakeAccount = pickle.loads(blob)  # noqa: S301 - from our own child
        return account

    def stop(self) -> tuple[FakeAccount | None, list[str]]:
        final: FakeAccount | None = None
        errors: list[str] = []
        try:
            with self._lock:
                if self._conn is not None:
                    self._conn.send(("stop",))
                    if self._conn.poll(_STOP_TIMEOUT):
                        _kind, blob, errors = self._conn.recv()
                        final = pickle.loads(blob)  # noqa: S301 - from our own child
        except (OSError, EOFError):
            pass
        finally:
            self._kill(wait=_STOP_TIMEOUT)
        return final, errors

    def _kill(self, *, wait: float) -> None:
        process, self._process = self._process, None
        if process is not None:
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _child_main(fd: int) -> None:
    """The child process: serve the account, answer control calls, send it back at the end."""
    conn = Connection(fd)
    blob, port = conn.recv()
    account: FakeAccount = pickle.loads(blob)  # noqa: S301 - from our own parent
    server = _HttpServer(account.dispatch)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def ready(bound: int) -> None:
            account._swap_host(f"http://{_LOOPBACK}:{bound}")
            conn.send(("ready", bound))
            threading.Thread(
                target=_control, args=(conn, account, loop, stop), name="control", daemon=True
            ).start()

        await server.run(port, ready, stop)

    try:
        asyncio.run(serve())
    except BaseException as exc:
        conn.send(("failed", "".join(traceback.format_exception(exc))))
        raise
    with contextlib.suppress(OSError):  # the parent may be gone
        conn.send(("stopped", account._dumps(), server.errors))
    conn.close()


def _control(
    conn: Connection, account: FakeAccount, loop: asyncio.AbstractEventLoop, stop: asyncio.Event
) -> None:
    """Answer the parent's calls on the account until it says stop (or goes away)."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] != "call":
            break
        _, name, args, kwargs = message
        try:
            reply: tuple[str, Any] = ("ok", getattr(account, name)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - sent back and raised in the parent
            reply = ("error", exc)
        conn.send(reply)
    loop.call_soon_threadsafe(stop.set)


class ServedAccount:
    """A `FakeAccount` served over HTTP/1.1 on 127.0.0.1; get one from `FakeAccount.serve()`.

    `with` starts it and gives the base URL; leaving the block stops it (and, in process
    mode, copies the child's final state back into the account). `start()` and `stop()`
    do the same by hand. Each answer carries `X-Fake-Server-Time`: the seconds the
    emulator spent on the request (injected latency excluded).

    Example:
        >>> fake = FakeAccount()
        >>> alice = fake.add_user("alice@example.com")
        >>> server = fake.serve()
        >>> url = server.start()
        >>> url == server.url == fake.host
        True
        >>> server.group_members(fake.add_group("g", members=[alice])) == {alice}
        True
        >>> server.stop()
        >>> fake.host
        'https://accounts.cloud.databricks.com'

    In process mode the live account is in the child: `group_members`, `groups_of`,
    `log`, `counts`, `faults`, `reset_log` and `call` reach it there (in thread mode they
    are the account's own), and `sync()` copies its state into the parent's account.
    """

    def __init__(
        self, account: FakeAccount, *, process: bool, port: int, startup_timeout: float
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 to 65535, got {port!r}")
        self.account = account
        """The account served."""
        self.process = process
        """Whether it is served from a child process."""
        self._port = port
        self._startup_timeout = startup_timeout
        self._runner: _ThreadRunner | _ProcessRunner | None = None
        self._url: str | None = None
        self._host: str | None = None

    def __repr__(self) -> str:
        mode = "process" if self.process else "thread"
        return f"ServedAccount(url={self._url!r}, mode={mode!r})"

    @property
    def url(self) -> str:
        """The base URL, `http://127.0.0.1:<port>` (only while serving)."""
        if self._url is None:
            raise RuntimeError("The account is not being served.")
        return self._url

    def workspace_host(self, workspace_id: int) -> str:
        """A workspace's host on this server, `http://127.0.0.1:<port>/ws/<id>`.

        Point `WorkspaceClient(host=...)` or an httpx client at it: the server answers
        requests under that path prefix as the workspace (while serving).
        """
        return f"{self.url}/ws/{int(workspace_id)}"

    def start(self) -> str:
        """Start serving and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("The account is already being served.")
        runner = _ProcessRunner(self.account) if self.process else _ThreadRunner(self.account)
        bound = runner.start(self._port, self._startup_timeout)
        self._runner = runner
        self._url = f"http://{_LOOPBACK}:{bound}"
        self._host = self.account._swap_host(self._url)
        return self._url

    def stop(self) -> None:
        """Stop serving; in process mode, the account takes the child's final state.

        Raises:
            RuntimeError: The emulator failed on a request while serving (answered 500);
                the message holds the traceback.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        errors: list[str]
        if isinstance(runner, _ProcessRunner):
            final, errors = runner.stop()
            if final is not None:
                self.account._adopt(final)
        else:
            errors = runner.stop()
        if self._host is not None:
            self.account._swap_host(self._host)
        self._url = None
        if errors:
            raise RuntimeError(f"The emulator failed while serving:\n{errors[0]}")

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- the live account ------------------------------------------------------------

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call a method of the live account by name, where it lives; return the result.

        Example: `server.call("add_member", group_id, user_id)`. In process mode the
        arguments and the result travel by pickle; an exception raised there is raised
        here.
        """
        if self._runner is None:
            return getattr(self.account, name)(*args, **kwargs)
        return self._runner.call(name, args, kwargs)

    def sync(self) -> None:
        """Copy the live account's state, log and counts into `account` (process mode)."""
        runner = self._runner
        if isinstance(runner, _ProcessRunner):
            self.account._adopt(runner.dump())

    def group_members(self, group_id: str) -> frozenset[str]:
        """The ids of a group's direct members in the live account."""
        members: frozenset[str] = self.call("group_members", group_id)
        return members

    def groups_of(self, principal_id: str) -> frozenset[str]:
        """The ids of the groups a principal is a direct member of, in the live account."""
        groups: frozenset[str] = self.call("groups_of", principal_id)
        return groups

    @property
    def log(self) -> tuple[RequestRecord, ...]:
        """The live account's request log."""
        return self._attribute("log")  # type: ignore[no-any-return]

    @property
    def counts(self) -> Counter[OperationClass]:
        """The live account's request counts by operation class."""
        return self._attribute("counts")  # type: ignore[no-any-return]

    @property
    def faults(self) -> Counter[str]:
        """The live account's counts of injected faults by name."""
        return self._attribute("faults")  # type: ignore[no-any-return]

    def reset_log(self) -> None:
        """Forget the live account's log and counts."""
        self.call("reset_log")

    def _attribute(self, name: str) -> Any:
        if self._runner is None:
            return getattr(self.account, name)
        return self._runner.call("__getattribute__", (name,), {})
