"""ZeroMQ's I/O threads under ``SCHED_BATCH``: they do not preempt the thread that woke them.

A shard's event loop hands each bus batch to its ZeroMQ I/O thread, which writes it to the socket;
in the merger, the I/O thread reads it and wakes the merger's loop. An I/O thread of the normal
policy, woken, preempts the thread that woke it (Linux's wake-up preemption): a switch away from
the loop in the middle of its turn and a switch back, with its caches to refill. A ``SCHED_BATCH``
thread is not favoured at wake-up (it runs when the loop waits, at the end of its turn, or on
another core) and keeps the same share of the CPU as before (nice 0).

libzmq sets the policy as it starts its threads and aborts the process if the OS refuses it, so it
is asked for only once this process has been seen to be allowed it (on the calling thread, which is
then put back as it was). It must be asked for before the context's first socket starts its threads.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq

IO_THREAD_NAME = "ZMQbg/IO"  # how libzmq names its I/O threads (``/proc/<pid>/task/<tid>/comm``)


def batch_io_threads(ctx: zmq.Context[zmq.Socket[bytes]]) -> bool:
    """Start ``ctx``'s I/O threads under ``SCHED_BATCH``, where the OS has it and allows it; whether it will."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return False
    try:
        before, param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, policy, os.sched_param(0))
        os.sched_setscheduler(0, before, param)
    except (OSError, AttributeError):
        return False
    ctx.set(zmq.THREAD_SCHED_POLICY, policy)
    return True


def io_thread_policies(pid: int) -> list[int]:
    """The scheduling policy of each ZeroMQ I/O thread of process ``pid`` (Linux), to check the above."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [os.sched_getscheduler(int(t.name)) for t in tasks if (t / "comm").read_text().startswith(IO_THREAD_NAME)]
