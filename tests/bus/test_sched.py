"""`bus.sched`: the I/O threads of a context really run under SCHED_BATCH, the caller's thread is left as it was.

Each case runs in a fresh interpreter, so that the only ZeroMQ threads in it are those of the context under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling policies are Linux's")

_PROBE = """
import json, os, sys, time
import zmq
from bus.sched import batch_io_threads, io_thread_policies

ctx = zmq.Context()
asked = batch_io_threads(ctx) if sys.argv[1] == "batch" else False
sock = ctx.socket(zmq.PUB)  # the first socket starts the context's threads
sock.bind("tcp://127.0.0.1:*")
deadline = time.monotonic() + 10
while not (policies := io_thread_policies(os.getpid())) and time.monotonic() < deadline:
    time.sleep(0.01)  # a thread names itself once it runs
print(json.dumps({"asked": asked, "io": policies, "caller": os.sched_getscheduler(0)}))
sock.close(linger=0)
ctx.term()
"""


def _probe(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_the_io_threads_of_the_context_run_under_sched_batch_and_the_caller_is_left_as_it_was() -> None:
    inherited = os.sched_getscheduler(0)  # the probe's process starts with this one's policy
    assert _probe("batch") == {"asked": True, "io": [os.SCHED_BATCH], "caller": inherited}


def test_without_it_they_run_under_the_policy_of_the_process() -> None:
    inherited = os.sched_getscheduler(0)
    assert _probe("normal") == {"asked": False, "io": [inherited], "caller": inherited}
