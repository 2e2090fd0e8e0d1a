"""Where a running cluster is, from its settings file: the shards' bus endpoints and the Redis URL."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ingest.errors import UserError
from ingest.settings import load

_PORT = re.compile(rb"Running mode=\w+, port=(\d+)\.")


def endpoints(settings_path: str | os.PathLike[str] = "settings.toml") -> list[str]:
    """The bus endpoints of every shard of the cluster a settings file describes."""
    return load(settings_path).bus_endpoints()


def redis_url(settings_path: str | os.PathLike[str] = "settings.toml") -> str:
    """The cluster's Redis: ``redis.url``, or for the embedded one (a free port chosen at each start)
    the port its server last reported in ``{var_dir}/redis/redis.log``."""
    settings = load(settings_path)
    if settings.redis.url != "embedded":
        return settings.redis.url
    log = Path(settings.var_path) / "redis" / "redis.log"
    try:
        ports = _PORT.findall(log.read_bytes())
    except OSError:
        ports = []
    if not ports:
        raise UserError(f"no embedded Redis has run under {log.parent} yet: start `ingest run` first")
    return f"redis://127.0.0.1:{int(ports[-1])}/0"
