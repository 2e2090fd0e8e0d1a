"""Children that stop when their parent dies (Linux's parent-death signal).

The parent of a cluster (or of a bench) starts the merger, the shards, the simulator and the embedded
redis-server. Stopped, it stops them; killed (SIGKILL, the OOM killer), it cannot, and they ran on:
the shards and the merger holding the cluster's sockets and writing Redis, the embedded redis-server
holding its folder, while a new cluster could start on the same ``var_dir`` (its lock went with the
parent) and a second redis-server on the same files. Each child now asks the kernel for SIGTERM when
its parent dies (``PR_SET_PDEATHSIG``): a shard and the merger stop as on a normal stop (the merger
drains what Redis still takes), the simulator and Redis end. Elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
_SIGTERM = int(signal.SIGTERM)


def _find_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_prctl = _find_prctl()


def at_exec() -> None:
    """SIGTERM when the parent dies. Also ``preexec_fn`` of a `subprocess.Popen` child that is not
    Python (redis-server): between fork and exec only this C call runs; the request survives the exec."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, _SIGTERM, 0, 0, 0)


def stop_with_parent(parent: int) -> None:
    """In a child of ``parent``: SIGTERM when it dies, or now if it already has."""
    if _prctl is None:
        return
    at_exec()
    if os.getppid() != parent:  # it died before the request: nothing would signal us
        os.kill(os.getpid(), _SIGTERM)


def run_child(parent: int, target: Callable[..., None], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A `multiprocessing` child's entry point: `stop_with_parent`, then ``target(*args, **kwargs)``."""
    stop_with_parent(parent)
    target(*args, **kwargs)
