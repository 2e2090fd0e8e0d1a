"""A parent killed without stopping its children (SIGKILL) takes them with it: a shard-like child
started by the supervisor, and the embedded redis-server (real processes, real signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PARENT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from bus.embedded_redis import EmbeddedRedis
from shards.supervisor import Child
from test_lifetime import beat_forever
redis = EmbeddedRedis(Path({data!r}), appendonly=False).start()
child = Child("child", beat_forever, ())
child.start()
print(redis.proc.pid, child.pid, flush=True)
time.sleep(120)
"""


def beat_forever(heartbeat: Any) -> None:
    while True:
        heartbeat.beat()
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone; so does one reaped since the kill above.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False


def test_the_children_and_redis_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = PARENT.format(tests=str(Path(__file__).parent), data=str(tmp_path / "redis"))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    redis_pid, child_pid = map(int, parent.stdout.readline().split())
    try:
        assert _alive(redis_pid) and _alive(child_pid)
        parent.send_signal(signal.SIGKILL)  # it cannot stop anything now
        parent.wait()
        deadline = time.monotonic() + 15
        while (_alive(redis_pid) or _alive(child_pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child_pid), "the child outlived its killed parent"
        assert not _alive(redis_pid), "the embedded redis-server outlived its killed parent"
    finally:
        for pid in (redis_pid, child_pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
