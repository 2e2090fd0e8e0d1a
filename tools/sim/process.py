"""Running the simulator beside the cluster: as a child process (`SimulatorProcess`) for
``ingest run --simulate`` and the tests, or in the foreground for ``ingest sim``."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import multiprocess as mp
import orjson

from ingest.errors import UserError
from ingest.lifetime import run_child
from ingest.settings import Settings, SimulatorSettings
from tools.sim.prebuilt import ReplaySpec
from tools.sim.server import run_process, serve_forever


class SimulatorProcess:
    """The simulator in its own process; ``start()`` returns once it listens."""

    def __init__(
        self,
        settings: SimulatorSettings,
        feeds: dict[str, list[str]],
        truth_path: Path,
        ping_interval: float = 20.0,
        pong_timeout: float = 60.0,
        replay: ReplaySpec | None = None,
    ) -> None:
        """``replay``: pre-build the market and send it (`tools.sim.prebuilt`) instead of the live clock."""
        self.settings = settings
        self.feeds = feeds
        self.truth_path = truth_path
        self.ready_file = truth_path.parent / "ready.json"
        self.progress_file = truth_path.parent / "ready.json.progress"
        self._args = (settings, feeds, truth_path, self.ready_file, ping_interval, pong_timeout, replay)
        self.proc: Any = None
        self.urls: dict[str, Any] = {}

    def start(self, timeout: float = 20.0, progress: Callable[[int, int], None] | None = None) -> SimulatorProcess:
        """Start it and wait until it listens. While it pre-builds a market, ``progress`` hears
        ``(built, wanted)`` frames about every 5 %, and ``timeout`` runs from its last report."""
        self.truth_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        self.progress_file.unlink(missing_ok=True)
        self.proc = mp.get_context("spawn").Process(target=run_child, args=(os.getpid(), run_process, self._args, {}),
                                                    name="simulator")  # fmt: skip
        self.proc.start()
        deadline = time.monotonic() + timeout
        last = b""
        while not self.ready_file.exists():
            if not self.proc.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise UserError(f"the simulator did not start (port {self.settings.port} in use?)")
            time.sleep(0.05)
            report = self.progress_file.read_bytes() if self.progress_file.exists() else last
            if report != last:
                last, deadline = report, time.monotonic() + timeout
                if progress is not None:
                    built = orjson.loads(report)
                    progress(int(built["built"]), int(built["wanted"]))
        self.urls = orjson.loads(self.ready_file.read_bytes())
        return self

    def point_feeds(self, settings: Settings) -> Settings:
        """The settings with every feed's URLs pointing at this simulator."""
        feeds = tuple(
            dataclasses.replace(f, ws_url=self.urls["ws_url"][f.exchange], rest_url=self.urls["rest_url"][f.exchange])
            for f in settings.feeds
        )
        return dataclasses.replace(settings, feeds=feeds)

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.urls['control_url']}/{path}",
            data=orjson.dumps(body or {}),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            result: dict[str, Any] = orjson.loads(resp.read())
        return result

    def freeze(self) -> dict[str, Any]:
        """Stop the market; the truth log then holds the final books."""
        return self._post("freeze")

    def fault(self, kind: str, exchange: str, **params: Any) -> dict[str, Any]:
        """Inject a fault (see `tools.sim.server`): drop, stall (seconds=) or skip (count=)."""
        return self._post("fault", {"kind": kind, "exchange": exchange, **params})

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.urls['control_url']}/status", timeout=30) as resp:
            result: dict[str, Any] = orjson.loads(resp.read())
        return result

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
        self.proc = None


def serve_in_foreground(settings: SimulatorSettings, feeds: dict[str, list[str]], truth_path: Path) -> None:
    """``ingest sim``: serve until Ctrl-C or SIGTERM, printing the URLs to use."""

    def ready(urls: dict[str, Any]) -> None:
        for exchange in urls["ws_url"]:
            print(f"{exchange}: ws_url = \"{urls['ws_url'][exchange]}\"  rest_url = \"{urls['rest_url'][exchange]}\"")
        print(f"control: {urls['control_url']}/fault | /freeze | /status   truth log: {truth_path}")
        print("Ctrl-C stops (the truth log gets the final books).", file=sys.stderr, flush=True)
        sys.stdout.flush()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_forever(settings, feeds, truth_path, ready, stop=stop)

    truth_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(main())
    except OSError as e:
        raise UserError(f"the simulator cannot listen on {settings.host}:{settings.port}: {e}") from None
