"""One Lua script called over its own connection: the command packed here, the integer reply read off the socket.

The merger writes Redis with one ``EVALSHA`` per write, a few hundred a second. Through redis-py each
call went through ``execute_command``, its ``Retry``, the pool's get/release and the pure-Python RESP3
parser: ~100 us of CPU per call, most of the merger's Python. Here the call is one ``sendall`` of a
buffer packed by the caller and one ``recv`` of the ``:<n>\\r\\n`` reply, ~30 us.

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

import hashlib
import socket
from collections.abc import Iterable

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
        self._sock: socket.socket | None = None
        key_list = [k.encode() for k in keys]
        self._nkeys = len(key_list)
        self._keys = b"".join(bulk(k) for k in key_list)

    def head(self, nargs: int) -> bytes:
        """The packed command up to the script's first argument, for a call with ``nargs`` arguments."""
        return (b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + self._nkeys + nargs) + bulk(self.sha.encode())
                + bulk(b"%d" % self._nkeys) + self._keys)  # fmt: skip

    def call(self, command: bytes) -> int:
        """Send ``command`` (`head` followed by the arguments, each ``$<len>\\r\\n<arg>\\r\\n``) and
        return the script's integer reply."""
        fresh = self._sock is None
        try:
            try:
                return self._roundtrip(command)
            except NoScriptError:
                self._client.script_load(self._script)
                return self._roundtrip(command)
        except redis.ConnectionError:
            if fresh:
                raise
            return self._roundtrip(command)  # the idle connection had broken: once more, on a new one

    def close(self) -> None:
        self._sock = None
        self._conn.disconnect()  # type: ignore[no-untyped-call]  # (redis-py leaves it untyped)

    def _roundtrip(self, command: bytes) -> int:
        sock = self._sock
        if sock is None:
            self._conn.connect()  # type: ignore[no-untyped-call]
            sock = self._sock = self._conn._sock
            if sock is None:  # pragma: no cover - connect() either sets the socket or raises
                raise redis.ConnectionError("redis connection has no socket after connect")
        try:
            sock.sendall(command)
            reply = sock.recv(4096)
            while not reply.endswith(b"\r\n"):
                more = sock.recv(4096)
                if not more:
                    break
                reply += more
        except TimeoutError:
            self.close()
            raise redis.TimeoutError("timeout writing to or reading from redis") from None
        except OSError as e:
            self.close()
            raise redis.ConnectionError(f"error writing to or reading from redis: {e}") from None
        kind = reply[:1]
        if kind == b":" and reply.endswith(b"\r\n"):
            return int(reply[1:-2])
        if not reply.endswith(b"\r\n"):
            self.close()
            raise redis.ConnectionError("connection closed by redis")
        if kind == b"-":
            raise BaseParser.parse_error(reply[1:-2].decode(errors="replace"))  # type: ignore[no-untyped-call]  # redis-py's class
        self.close()  # any other reply: out of step with the server, start again on a new connection
        raise redis.ConnectionError(f"unexpected reply from redis: {reply[:40]!r}")


def bulk(arg: bytes) -> bytes:
    """One argument of a packed command."""
    return b"$%d\r\n%b\r\n" % (len(arg), arg)
