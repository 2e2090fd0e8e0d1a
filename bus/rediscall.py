"""One Lua script called over its own connection: the command packed here, the reply (an integer or an
array of integers) read off the socket.

The merger writes Redis with one ``EVALSHA`` per write, a few hundred a second. Through redis-py each
call went through ``execute_command``, its ``Retry``, the pool's get/release and the pure-Python RESP3
parser: ~100 us of CPU per call, most of the merger's Python. Here the call is one ``sendall`` of a
buffer packed by the caller and one ``recv`` of the ``:<n>\\r\\n`` reply, ~30 us.

The reply need not be waited for: `send` returns once the command is sent and `receive` reads the
reply later, when the caller's poll finds the socket (`fileno`) readable. Redis runs a write with its
fsync in a few hundred microseconds; a caller that blocked in ``recv`` for it slept and was woken once
more per write, and a wake-up is most of what a write costs the merger (see BENCHMARKS.md). One call
is in flight at a time; a reply not there within the socket timeout is given up (`abandon`).

What redis-py does well stays with redis-py: the connection is a redis-py ``Connection`` made from the
client's own settings (every URL form: host and port, unix socket, TLS, user and password, db; the
socket and connect timeouts) and connected, authenticated and selected by redis-py; it is only kept out
of the pool, and its socket used directly once connected. Every failure is a `redis.RedisError`:
``ConnectionError``/``TimeoutError`` for the socket (the connection is then dropped, the next call
connects again), redis-py's own class for an error reply (``NOSCRIPT``, ``LOADING``, ``READONLY``...).

- ``NOSCRIPT`` (Redis restarted, or ``SCRIPT FLUSH``): the script is loaded and the call made once more.
- A connection that had been idle and is found broken (Redis restarted meanwhile) is replaced and the
  call made once more at once, as redis-py's retry did; a call that fails on a fresh connection raises,
  and the caller decides when to try again (`bus.outbox` backs off). A call whose reply was lost may
  have run: callers make a repeated call harmless (`bus.streams` checkpoints).
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import time
from collections.abc import Iterable
from typing import NoReturn

import redis
from redis._parsers import BaseParser
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError
from redis.retry import Retry


class ScriptCall:
    def __init__(self, client: redis.Redis, script: str, keys: Iterable[str]) -> None:
        """``keys``: the script's keys, the same on every call (the arguments vary)."""
        self._client = client
        self._script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        pool = client.connection_pool
        # One attempt per connect: a Redis that is down fails the call at once, and the caller's
        # back-off decides when to try again (redis-py's default retry sleeps up to seconds in here).
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        self._conn: AbstractConnection = pool.connection_class(**kwargs)
        timeout = kwargs.get("socket_timeout")
        self.timeout_s: float | None = float(timeout) if isinstance(timeout, (int, float)) else None
        self._sock: socket.socket | None = None
        key_list = [k.encode() for k in keys]
        self._nkeys = len(key_list)
        self._keys = b"".join(bulk(k) for k in key_list)
        self._sent: bytes | None = None  # the command whose reply has not been read yet
        self._sent_fresh = False  # ... sent on a connection made for it
        self.sent_at = 0.0  # ... when (`time.monotonic`)

    def head(self, nargs: int) -> bytes:
        """The packed command up to the script's first argument, for a call with ``nargs`` arguments."""
        return (b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + self._nkeys + nargs) + bulk(self.sha.encode())
                + bulk(b"%d" % self._nkeys) + self._keys)  # fmt: skip

    def call(self, command: bytes) -> tuple[int, ...]:
        """Send ``command`` (`head` followed by the arguments, each ``$<len>\\r\\n<arg>\\r\\n``) and
        return the script's reply: its integer, or its array of integers."""
        self.send(command)
        return self.receive()

    def send(self, command: bytes) -> None:
        """Send ``command`` without waiting for the reply (`receive` reads it; one call at a time)."""
        if self._sent is not None:
            raise RuntimeError("a script call is already waiting for its reply")
        fresh = self._sock is None
        try:
            self._send(command)
        except redis.ConnectionError:
            if fresh:
                raise
            fresh = True
            self._send(command)  # the idle connection had broken: once more, on a new one
        self._sent, self._sent_fresh, self.sent_at = command, fresh, time.monotonic()

    @property
    def waiting(self) -> bool:
        """A command was sent and its reply not read yet."""
        return self._sent is not None

    def fileno(self) -> int:
        """The connection's socket, readable once the reply of the call in flight is there."""
        if self._sock is None:
            raise redis.ConnectionError("no connection to redis")
        return self._sock.fileno()

    def receive(self) -> tuple[int, ...]:
        """The reply of the command sent, waiting for it if it has not come (up to the socket timeout)."""
        command, fresh = self._sent, self._sent_fresh
        if command is None:
            raise RuntimeError("no script call is waiting for its reply")
        self._sent = None
        try:
            try:
                return self._reply()
            except NoScriptError:
                self._client.script_load(self._script)
                return self._roundtrip(command)
        except redis.ConnectionError:
            if fresh:
                raise
            return self._roundtrip(command)  # the idle connection had broken: once more, on a new one

    def abandon(self) -> None:
        """Give up on the reply of the call in flight (it took longer than the socket timeout): the
        connection is closed; the call may or may not have run."""
        self._sent = None
        self.close()

    def close(self) -> None:
        self._sock = None
        self._conn.disconnect()  # type: ignore[no-untyped-call]  # (redis-py leaves it untyped)

    def _roundtrip(self, command: bytes) -> tuple[int, ...]:
        self._send(command)
        return self._reply()

    def _send(self, command: bytes) -> None:
        sock = self._sock
        if sock is None:
            self._conn.connect()  # type: ignore[no-untyped-call]
            sock = self._sock = self._conn._sock
            if sock is None:  # pragma: no cover - connect() either sets the socket or raises
                raise redis.ConnectionError("redis connection has no socket after connect")
        try:
            sock.sendall(command)
        except OSError as e:
            self._failed(e)

    def _reply(self) -> tuple[int, ...]:
        sock = self._sock
        if sock is None:
            raise redis.ConnectionError("connection to redis closed")
        try:
            reply = sock.recv(4096)
            while reply and not _complete(reply):
                more = sock.recv(4096)
                if not more:
                    break
                reply += more
        except OSError as e:
            self._failed(e)
        if not _complete(reply):
            self.close()
            raise redis.ConnectionError("connection closed by redis")
        kind = reply[:1]
        if kind == b"-":
            raise BaseParser.parse_error(reply[1:-2].decode(errors="replace"))  # type: ignore[no-untyped-call]  # redis-py's class
        lines = reply.split(b"\r\n")[:-1]
        if kind == b"*":
            lines = lines[1:]
        if lines and all(line[:1] == b":" for line in lines):
            with contextlib.suppress(ValueError):
                return tuple(int(line[1:]) for line in lines)
        self.close()  # any other reply: out of step with the server, start again on a new connection
        raise redis.ConnectionError(f"unexpected reply from redis: {reply[:40]!r}")

    def _failed(self, error: OSError) -> NoReturn:
        self.close()
        if isinstance(error, TimeoutError):
            raise redis.TimeoutError("timeout writing to or reading from redis") from None
        raise redis.ConnectionError(f"error writing to or reading from redis: {error}") from None


def _complete(reply: bytes) -> bool:
    """A whole reply: one line (an integer, an error), or an array's header line and its elements' lines
    (a script's reply is flat: integers)."""
    lines = reply.count(b"\r\n")
    if not lines or not reply.endswith(b"\r\n"):
        return False
    if reply[:1] != b"*":
        return True
    head = reply[1:reply.index(b"\r\n")]
    return not head.lstrip(b"-").isdigit() or lines >= 1 + max(0, int(head))


def bulk(arg: bytes) -> bytes:
    """One argument of a packed command."""
    return b"$%d\r\n%b\r\n" % (len(arg), arg)
