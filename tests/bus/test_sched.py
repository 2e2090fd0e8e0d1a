"""`bus.sched`: the I/O threads of a context really run under SCHED_BATCH, the caller's thread is left as it was."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import zmq

from bus.sched import batch_io_threads

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling policies are Linux's")


def _io_threads() -> set[int]:
    return {int(t.name) for t in Path("/proc/self/task").iterdir()
            if (t / "comm").read_text().startswith("ZMQbg/IO")}  # fmt: skip


def _policies_of_new_io_threads(batch: bool) -> list[int]:
    before = _io_threads()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        if batch:
            assert batch_io_threads(ctx)
        sock = ctx.socket(zmq.PUB)  # the first socket starts the context's threads
        sock.bind("tcp://127.0.0.1:*")
        new = _io_threads() - before
        assert new
        policies = [os.sched_getscheduler(tid) for tid in sorted(new)]
        sock.close(linger=0)
    finally:
        ctx.term()
    return policies


def test_the_io_threads_of_the_context_run_under_sched_batch() -> None:
    main_policy = os.sched_getscheduler(0)
    assert _policies_of_new_io_threads(batch=True) == [os.SCHED_BATCH]
    assert os.sched_getscheduler(0) == main_policy  # the probe on the calling thread was undone


def test_without_it_they_run_under_the_normal_policy() -> None:
    assert _policies_of_new_io_threads(batch=False) == [os.SCHED_OTHER]
