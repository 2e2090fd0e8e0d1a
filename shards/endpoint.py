"""The parent's HTTP endpoint: `/metrics`, `/health`, `/ready`, `/status` (the I/O; the rules are in
`shards.monitor`, the metric families in `shards.exporter`).

Two daemon threads in the parent: one receives the children's reports (ZeroMQ PULL, bound on
``Settings.telemetry_endpoint``) into `shards.monitor.Reports`, and adds the parent's own every
interval; the other serves HTTP (``http.server.ThreadingHTTPServer``). The supervision loop hands its
view over with `MetricsEndpoint.supervised` on every tick; `/health` answers 200 while that tick is
recent. One lock guards the reports; nothing here touches a child process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import structlog
import zmq
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bus.report import usage
from ingest.errors import UserError
from ingest.settings import Settings
from shards import monitor
from shards.exporter import ReportCollector, families
from shards.monitor import Expected, Reports, Supervised

log = structlog.get_logger("metrics")

HEALTH_S = 5.0  # /health is 503 once the supervision loop has not ticked for this long


class MetricsEndpoint:
    """``start()`` binds both sockets (a `UserError` if the address is taken); ``stop()`` closes them."""

    def __init__(self, settings: Settings) -> None:
        m = settings.metrics
        self.settings = settings
        self.interval = m.interval
        self.expected = [Expected(f.exchange, s, "book" in f.channels) for f in settings.feeds for s in f.symbols]
        self.reports = Reports()
        self.started = time.time()
        self.address = ""
        self._lock = threading.Lock()
        self._view: tuple[float, list[Supervised]] = (time.monotonic(), [])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: ThreadingHTTPServer | None = None
        self._pull: zmq.Socket[bytes] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ReportCollector(self._families))

    # -- what the handlers answer (under the lock) ------------------------------------------------

    def supervised(self, processes: Sequence[Supervised]) -> None:
        """The supervision loop's view, handed over on every tick."""
        parent = Supervised("parent", "parent", os.getpid(), True)
        self._view = (time.monotonic(), [parent, *processes])

    def healthy(self) -> bool:
        return time.monotonic() - self._view[0] < HEALTH_S

    def _reasons(self, now: float) -> list[str]:
        m = self.settings.metrics
        stale_report = max(m.ready_grace, 3 * m.interval)
        return monitor.not_ready(self.reports, self.expected, now, self.started, m.ready_grace, m.stale_after,
                                 stale_report)  # fmt: skip

    def ready(self) -> dict[str, Any]:
        with self._lock:
            reasons = self._reasons(time.time())
        return {"ready": not reasons, "not_ready": reasons}

    def status(self) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            return monitor.status(self.reports, self._view[1], self._reasons(now), now, self.started)

    def _families(self) -> list[Any]:
        now = time.time()
        with self._lock:
            return families(self.reports, self._view[1], now, not self._reasons(now))

    # -- I/O ----------------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind the report socket and the HTTP server, start their threads; the bound "host:port"."""
        listen = self.settings.metrics.listen
        host, _, port = listen.rpartition(":")
        try:
            self._http = ThreadingHTTPServer((host.strip("[]"), int(port)), _handler(self))
        except OSError as e:
            raise UserError(f"metrics.listen = {listen!r}: cannot listen there ({e.strerror or e}); choose another"
                            ' port, 0 for any free one, or "" for no endpoint') from None  # fmt: skip
        self._http.daemon_threads = True
        bound_host, bound_port = self._http.server_address[:2]
        self.address = f"{bound_host!s}:{bound_port}"
        endpoint = self.settings.telemetry_endpoint()
        assert endpoint is not None
        self._pull = zmq.Context.instance().socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.bind(endpoint)
        var = self.settings.var_path
        (var / "metrics.addr.tmp").write_text(self.address + "\n")
        os.replace(var / "metrics.addr.tmp", var / "metrics.addr")
        for target, name in ((self._receive, "metrics-reports"), (self._http.serve_forever, "metrics-http")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("metrics endpoint listening", address=self.address, url=f"http://{self.address}/metrics")
        return self.address

    def _receive(self) -> None:
        assert self._pull is not None
        pull, next_own = self._pull, 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_own:  # the parent's own report, for its CPU and memory
                next_own = time.monotonic() + self.interval
                with self._lock:
                    self.reports.add({"kind": "parent", "name": "parent", **usage()})
            if not pull.poll(200):
                continue
            while True:
                try:
                    raw = pull.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    report = orjson.loads(raw)
                    with self._lock:
                        self.reports.add(report)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    log.warning("bad report from a child; ignored", error=repr(e))

    def stop(self) -> None:
        self._stop.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for t in self._threads:
            t.join(5)
        if self._pull is not None:
            self._pull.close()
        (self.settings.var_path / "metrics.addr").unlink(missing_ok=True)


def _handler(endpoint: MetricsEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(endpoint.registry), CONTENT_TYPE_LATEST)
            elif path == "/health":
                ok = endpoint.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"supervision loop stalled\n", "text/plain")
            elif path == "/ready":
                doc = endpoint.ready()
                self._send(200 if doc["ready"] else 503, orjson.dumps(doc), "application/json")
            elif path == "/status":
                self._send(200, orjson.dumps(endpoint.status()), "application/json")
            else:
                self._send(404, b"not found: try /metrics, /health, /ready or /status\n", "text/plain")

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would flood the log

    return Handler
