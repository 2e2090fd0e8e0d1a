"""Typed, frozen, strict settings loaded from ``settings.toml``.

Every key is declared here with its type, default and a one-line description (``doc`` metadata);
README.md's settings reference is generated from the same declarations (``ingest check-config
--reference``). An unknown key, a wrong type or an impossible value raises `SettingsError` naming the
file and the dotted key.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ingest.errors import SettingsError

SECTION_DOCS = {
    "cluster": "Processes and the bus.",
    "redis": "Where and how the merger writes Redis Streams.",
    "simulator": "The local exchange simulator used by `--simulate`, `ingest sim` and tests.",
    "log": "Logging.",
    "bars": "1-minute OHLCV bars built by the shards from the trades they publish (README \"Bars\").",
    "metrics": "The parent's HTTP endpoint: Prometheus `/metrics`, `/health`, `/ready` and the JSON `/status`.",
    "feeds": "One `[[feeds]]` table per exchange: what to subscribe to.",
}


def _opt(default: Any, doc: str, check: Any = None) -> Any:
    meta = {"doc": doc, "check": check}
    if isinstance(default, dict):  # a table: each instance gets its own (empty) one
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _shards(v: int | str) -> str | None:
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 256):
        return None
    return 'must be "auto" or a whole number from 1 to 256'


def auto_shards(cpus: int) -> int:
    """``cluster.shards = "auto"``: a shard per core but one, which the merger and Redis need.

    On 2 cores one shard carried as much as two at full load and cost a quarter less CPU per message at
    10k and 20k msgs/s: the second shard had no core of its own (BENCHMARKS.md, session 12)."""
    return max(1, cpus - 1)


def _shards_text(n: int) -> str:
    return f"{n} shard{'s' if n != 1 else ''}"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or ``taskset``'s share), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _endpoint(v: str) -> str | None:
    if not v.startswith(("ipc://", "tcp://")):
        return "must start with ipc:// or tcp://"
    if "{shard}" not in v:
        return "must contain {shard} so that every shard gets its own endpoint"
    return None


def _redis_url(v: str) -> str | None:
    if v == "embedded" or v.startswith(("redis://", "rediss://", "unix://")):
        return None
    return 'must be "embedded" or a redis://, rediss:// or unix:// URL'


@dataclass(frozen=True)
class ClusterSettings:
    shards: int | str = _opt(
        "auto", 'Worker processes: "auto" (one per core, less one for the merger and Redis; at least 1) or a number.',
        _shards,
    )
    var_dir: str = _opt(
        "var",
        "Runtime files (sockets, embedded Redis data, logs), relative to the settings file; one cluster at a time.",
    )
    bus_endpoint: str = _opt(
        "ipc://{var}/bus-{shard}.sock",
        "Each shard's ZeroMQ PUB endpoint; `{shard}` is the shard number, `{var}` the var_dir.",
        _endpoint,
    )
    drain_timeout: float = _opt(15.0, "Seconds a stop may take to flush everything into Redis.", _positive)
    restart_delay: float = _opt(1.0, "Seconds before a dead worker or merger is started again.", _positive)
    restart_delay_max: float = _opt(
        30.0, "Cap of the restart delay, which doubles while a child keeps dying soon after its start.", _positive
    )
    repair_endpoint: str = _opt(
        "ipc://{var}/repair-{shard}.sock",
        "Each shard's ZeroMQ reply endpoint, where the merger asks for frames it missed.",
        _endpoint,
    )
    replay_buffer: int = _opt(
        200_000, "Frames each shard keeps after publishing them, for the merger's repairs.", _positive
    )
    heartbeat_interval: float = _opt(1.0, "Seconds between a child's heartbeats to the supervisor.", _positive)
    hang_timeout: float = _opt(
        10.0, "Seconds without a heartbeat after which a child is presumed hung, killed and restarted.", _positive
    )


@dataclass(frozen=True)
class RedisSettings:
    url: str = _opt(
        "embedded",
        '"embedded" starts a private redis-server under var_dir (append-only on; the cluster talks to it over'
        ' a Unix socket there); or a redis:// (or unix://) URL.',
        _redis_url,
    )
    maxlen: int = _opt(
        100_000,
        "Approximate cap per stream (`XADD MAXLEN ~`); it bounds Redis's memory (~130 bytes an entry:"
        " `ingest check-config` prints the bound, `ingest run` warns when Redis cannot hold it).",
        _positive,
    )
    batch_size: int = _opt(1000, "Entries per write to Redis at most.", _positive)
    batch_interval: float = _opt(
        0.002, "Least time between two writes on a busy bus (after a quiet spell an event is written at once).",
        _positive,
    )
    key_prefix: str = _opt("md", "Prefix of every stream key: `{prefix}:{channel}:{exchange}:{symbol}`.")
    outage_buffer: int = _opt(
        1_000_000,
        "Entries the merger holds while Redis is unreachable; past it, the oldest are dropped as counted gaps.",
        _positive,
    )


@dataclass(frozen=True)
class SimulatorSettings:
    host: str = _opt("127.0.0.1", "Address the simulator listens on.")
    port: int = _opt(0, "Port of the simulator (0: any free port).")
    rate: float = _opt(20.0, "Market events per second per symbol (each a book change, some a trade).", _positive)
    seed: int = _opt(7, "Seed of the market model: the same seed gives the same market.")
    levels: int = _opt(50, "Price levels per side of each simulated book.", _positive)
    trade_ratio: float = _opt(
        0.3, "Share of market events that are trades.", lambda v: None if 0 <= v <= 1 else "must be in 0..1"
    )
    options: dict[str, dict[str, bool | int | float | str]] = _opt(  # noqa: RUF009 (a field, default_factory)
        {},
        "Per exchange, protocol options of its simulator, e.g. `[simulator.options.okx]` `checksum = true`"
        " (see `ingest sim --help`).",
    )


@dataclass(frozen=True)
class LogSettings:
    level: Literal["debug", "info", "warning", "error"] = _opt("info", "Lowest level logged.")
    format: Literal["auto", "json", "console"] = _opt(
        "auto", "json lines, console (coloured) or auto (console on a terminal, json otherwise)."
    )


@dataclass(frozen=True)
class BarSettings:
    enabled: bool = _opt(True, "Build 1-minute bars from the trades (streams `{prefix}:bar:...`, topics `bar.`).")
    grace: float = _opt(
        2.0,
        "Seconds after a minute ends (exchange time) before its bar closes when no later trade of the symbol"
        " has closed it.",
        lambda v: None if 0 <= v <= 60 else "must be in 0..60",
    )
    keep: float = _opt(
        600.0,
        "Seconds after a minute ends during which a late trade (a backfill) still publishes a revised bar.",
        lambda v: None if 60 <= v <= 86400 else "must be in 60..86400",
    )


def _listen(v: str) -> str | None:
    if v == "":
        return None
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return 'must be "host:port" (port 0: any free port) or "" to disable the endpoint'
    return None


@dataclass(frozen=True)
class MetricsSettings:
    listen: str = _opt(
        "127.0.0.1:9464",
        'Address of the HTTP endpoint, "host:port"; port 0: any free port (the bound address is written to'
        ' `{var}/metrics.addr`; so is the free port taken, with a warning, when the default one is busy);'
        ' "": no endpoint, and the children report nothing.',
        _listen,
    )
    interval: float = _opt(
        1.0, "Seconds between the shards' and the merger's reports to the parent.",
        lambda v: None if 0.05 <= v <= 60 else "must be in 0.05..60",
    )
    ready_grace: float = _opt(
        10.0,
        "Seconds a feed may be disconnected, or a book not valid, and still count as ready (`/ready`).",
        lambda v: None if v >= 0 else "must be 0 or more",
    )
    stale_after: float = _opt(
        60.0,
        "Seconds without any message for a symbol after which it counts as not ready (`/ready`); 0: never.",
        lambda v: None if v >= 0 else "must be 0 or more",
    )


@dataclass(frozen=True)
class FeedSettings:
    exchange: str = _opt(MISSING, "Exchange name (binance).")
    symbols: tuple[str, ...] = _opt(MISSING, 'Canonical symbols, "BASE-QUOTE", e.g. "BTC-USDT".')
    channels: tuple[Literal["trades", "book"], ...] = _opt(("trades", "book"), "What to subscribe to.")
    ws_url: str = _opt("", "WebSocket base URL; empty: the exchange's production URL.")
    rest_url: str = _opt("", "REST base URL for book snapshots; empty: the exchange's production URL.")
    book_depth: int = _opt(
        0,
        "Book levels per side, where the exchange lets you choose; 0: the exchange's default.",
        lambda v: None if v >= 0 else "must be 0 or more",
    )
    redundancy: int = _opt(
        1,
        "Independent connections carrying the same subscriptions; events are published once, so losing one"
        " of them loses nothing.",
        lambda v: None if 1 <= v <= 3 else "must be 1, 2 or 3",
    )
    session_life: float = _opt(
        0.0,
        "Seconds after which each connection is replaced, make before break, so nothing is lost; 0: just"
        " before the exchange's own limit (its token or connection expires), if it has one.",
        lambda v: None if v == 0 or v >= 1 else "must be 0 or at least 1",
    )
    symbol_timeout: float = _opt(
        0.0,
        "Seconds a symbol's book may stay silent while its connection carries other data before it is"
        " presumed dead and resubscribed; 0: the exchange's default, set only where the exchange sends"
        " keep-alives per book (elsewhere a quiet book is legitimately silent).",
        lambda v: None if v == 0 or v >= 1 else "must be 0 or at least 1",
    )


@dataclass(frozen=True)
class Settings:
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    log: LogSettings = field(default_factory=LogSettings)
    bars: BarSettings = field(default_factory=BarSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    feeds: tuple[FeedSettings, ...] = ()
    # Where the settings came from; var_dir is resolved against its folder.
    source: str = "<defaults>"

    @property
    def var_path(self) -> Path:
        base = Path(self.source).parent if self.source != "<defaults>" else Path.cwd()
        return (base / self.cluster.var_dir).resolve()

    def shard_count(self) -> int:
        s = self.cluster.shards
        return auto_shards(usable_cpus()) if s == "auto" else int(s)

    def shards_summary(self) -> str:
        """``"3 shards"``; for ``"auto"`` also why (``"1 shard (auto: 2 CPUs, one left for the merger and Redis)"``)."""
        if self.cluster.shards != "auto":
            return _shards_text(int(self.cluster.shards))
        cpus = usable_cpus()
        return f"{_shards_text(auto_shards(cpus))} (auto: {cpus} CPUs, one left for the merger and Redis)"

    def bus_endpoints(self) -> list[str]:
        return [self.bus_endpoint(i) for i in range(self.shard_count())]

    def bus_endpoint(self, shard: int) -> str:
        return self.cluster.bus_endpoint.format(shard=shard, var=self.var_path)

    def repair_endpoint(self, shard: int) -> str:
        return self.cluster.repair_endpoint.format(shard=shard, var=self.var_path)

    def stream_count(self) -> int:
        """The Redis streams the cluster writes: per symbol its book, its trades and its bars (as
        subscribed), one connection-status stream per exchange, and the merger's gap records."""
        per_symbol = 0
        for f in self.feeds:
            trades = "trades" in f.channels
            per_symbol += len(f.symbols) * (("book" in f.channels) + trades + (trades and self.bars.enabled))
        return per_symbol + len({f.exchange for f in self.feeds}) + 1

    def telemetry_endpoint(self) -> str | None:
        """Where the children send their reports (the parent binds it); None when metrics are off."""
        return f"ipc://{self.var_path}/telemetry.sock" if self.metrics.listen else None


def load(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a settings file. Raises `SettingsError` for every problem."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(str(p), "", "no such file (give a path, or create settings.toml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(str(p), "", f"cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(str(p), "", f"not valid TOML: {e}") from None
    return from_dict(raw, str(p))


def from_dict(raw: dict[str, Any], source: str = "<dict>") -> Settings:
    settings: Settings = _build(Settings, raw, "", source, skip=("source",))
    settings = replace(settings, source=source)
    _check_whole(settings)
    return settings


def _check_whole(s: Settings) -> None:
    from ingest.exchanges import SPECS  # late: exchanges import settings-free pure code only

    seen: set[tuple[str, str]] = set()
    for i, feed in enumerate(s.feeds):
        key = f"feeds[{i}]"
        if feed.exchange not in SPECS:
            known = ", ".join(sorted(SPECS))
            raise SettingsError(s.source, f"{key}.exchange", f"unknown exchange {feed.exchange!r} (known: {known})")
        if not feed.symbols:
            raise SettingsError(s.source, f"{key}.symbols", "must list at least one symbol")
        if not feed.channels:
            raise SettingsError(s.source, f"{key}.channels", "must list at least one channel")
        depths = SPECS[feed.exchange].book_depths
        if feed.book_depth and depths and feed.book_depth not in depths:
            allowed = ", ".join(map(str, depths))
            raise SettingsError(
                s.source, f"{key}.book_depth", f"{feed.exchange} offers {allowed} (got {feed.book_depth})"
            )
        for sym in feed.symbols:
            parts = sym.split("-")
            if len(parts) != 2 or not all(p.isalnum() and p.isupper() for p in parts):
                raise SettingsError(
                    s.source, f"{key}.symbols", f"{sym!r} is not a canonical symbol like \"BTC-USDT\""
                )
            if (feed.exchange, sym) in seen:
                raise SettingsError(s.source, f"{key}.symbols", f"{feed.exchange} {sym} is listed twice")
            seen.add((feed.exchange, sym))


def _build(cls: Any, table: Any, prefix: str, source: str, skip: tuple[str, ...] = ()) -> Any:
    if not isinstance(table, dict):
        raise SettingsError(source, prefix.rstrip("."), "must be a table")
    known = {f.name: f for f in fields(cls) if f.name not in skip}
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            raise SettingsError(source, prefix + key, f"unknown key{hint}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in known.items():
        dotted = prefix + name
        if name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                raise SettingsError(source, dotted, "is required")
            continue
        values[name] = _convert(hints[name], table[name], dotted, source)
        check = f.metadata.get("check")
        problem = check(values[name]) if check else None
        if problem:
            raise SettingsError(source, dotted, f"{problem} (got {table[name]!r})")
    return cls(**values)


def _convert(tp: Any, value: Any, dotted: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if is_dataclass(tp):
        return _build(tp, value, dotted + ".", source)
    if origin is tuple:
        if not isinstance(value, list):
            raise SettingsError(source, dotted, f"must be a list (got {value!r})")
        item = args[0]
        if is_dataclass(item):
            return tuple(_build(item, v, f"{dotted}[{i}].", source) for i, v in enumerate(value))
        return tuple(_convert(item, v, dotted, source) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(source, dotted, f"must be a table (got {value!r})")
        return {k: _convert(args[1], v, f"{dotted}.{k}", source) for k, v in value.items()}
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise SettingsError(source, dotted, f"must be one of {allowed} (got {value!r})")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _convert(arg, value, dotted, source)
            except SettingsError:
                continue
        raise SettingsError(source, dotted, f"has the wrong type (got {value!r})")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise SettingsError(source, dotted, f"must be {_type_name(tp)} (got {value!r})")


def _type_name(tp: Any) -> str:
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def reference() -> str:
    """The settings reference as Markdown tables, from the declarations above."""
    out: list[str] = []
    for section in fields(Settings):
        if section.name == "source":
            continue
        hint = typing.get_type_hints(Settings)[section.name]
        cls = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
        header = f"[[{section.name}]]" if typing.get_origin(hint) is tuple else f"[{section.name}]"
        out.append(f"### `{header}`\n\n{SECTION_DOCS[section.name]}\n")
        out.append("| key | default | meaning |\n|---|---|---|")
        for f in fields(cls):
            if f.default is not MISSING:
                default = _toml(f.default)
            else:
                default = "(required)" if f.default_factory is MISSING else _toml(f.default_factory())
            out.append(f"| `{f.name}` | `{default}` | {f.metadata.get('doc', '')} |")
        out.append("")
    return "\n".join(out)


def _toml(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    return repr(v)


def dump(s: Settings) -> str:
    """The effective settings as TOML (what `ingest check-config` prints)."""
    out = [f"# effective settings from {s.source}"]
    for section in fields(Settings):
        value = getattr(s, section.name)
        if section.name == "source":
            continue
        if isinstance(value, tuple):
            for item in value:
                out.append(f"\n[[{section.name}]]")
                out.extend(f"{f.name} = {_toml(getattr(item, f.name))}" for f in fields(item))
        else:
            out.append(f"\n[{section.name}]")
            out.extend(f"{f.name} = {_toml(getattr(value, f.name))}" for f in fields(value))
    return "\n".join(out) + "\n"
