"""What the benchmark measures, and how: process CPU and memory from ``/proc``, and counts and
latencies of the entries that Redis committed in a time window, computed inside Redis.

CPU: ``utime + stime`` of ``/proc/<pid>/stat`` (clock ticks, 10 ms on Linux) for other processes,
``os.times()`` for this one; a process's CPU is read at the start and at the end of the window, so
only the work done inside the window counts. Memory: ``VmRSS``-equivalent (``/proc/<pid>/stat`` rss
pages).

Latency: an entry's stream id is ``<ms>-<n>``, the Redis server's clock (milliseconds) when the entry
was added; the entry carries the exchange's timestamp of the message it came from. The difference is
the time from the simulator stamping the message to Redis committing it, at 1 ms resolution on both
ends (both are truncated to the millisecond), so a reading of ``L`` ms means a true latency in
``(L-1, L+1)`` ms. Simulator, cluster and Redis share one host clock.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import redis

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float
    rss_bytes: int


def sample(pid: int) -> ProcSample | None:
    """CPU seconds (user + system) and resident memory of a process; None if it is gone."""
    if pid == os.getpid():
        t = os.times()
        rss = _rss_of(pid)
        return ProcSample(t.user + t.system, rss or 0)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(b")") + 2 :].split()  # the command name may contain spaces and parentheses
    utime, stime, rss_pages = int(rest[11]), int(rest[12]), int(rest[21])
    return ProcSample((utime + stime) / _TICK, rss_pages * _PAGE)


def _rss_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


class ProcessGroup:
    """A set of processes whose CPU and memory are summed; ``mark()`` starts the CPU window."""

    def __init__(self) -> None:
        self._start: dict[int, float] = {}
        self._last: dict[int, ProcSample] = {}
        self.peak_rss = 0
        self.lost_pids: set[int] = set()

    def poll(self, pids: Iterable[int]) -> int:
        """Sample every pid; returns the summed RSS now (and tracks the peak)."""
        total = 0
        for pid in pids:
            s = sample(pid)
            if s is None:
                if pid in self._start:
                    self.lost_pids.add(pid)
                continue
            self._last[pid] = s
            total += s.rss_bytes
        self.peak_rss = max(self.peak_rss, total)
        return total

    def mark(self, pids: Iterable[int]) -> None:
        """Start the CPU window now, for these pids."""
        self.poll(pids)
        self._start = {pid: self._last[pid].cpu_s for pid in pids if pid in self._last}

    def discount(self, pid: int, cpu_s: float) -> None:
        """Leave ``cpu_s`` seconds of ``pid``'s CPU since `mark` out of what it is said to have used
        (the bench's own work in its own process, which is the cluster's parent)."""
        if pid in self._start:
            self._start[pid] += cpu_s

    @property
    def marked(self) -> bool:
        return bool(self._start)

    def cpu_since_mark(self, pids: Iterable[int]) -> float:
        """CPU seconds used since `mark` by the processes (a pid started after the mark counts whole)."""
        self.poll(pids)
        return sum(self._last[p].cpu_s - self._start.get(p, 0.0) for p in set(pids) if p in self._last)

    def rss(self, pids: Iterable[int]) -> int:
        return sum(self._last[p].rss_bytes for p in pids if p in self._last)

    def breakdown(self, names: Mapping[str, int]) -> dict[str, dict[str, float]]:
        """Per named process, from the last samples: CPU seconds since `mark` and RSS in MB."""
        return {
            name: {
                "cpu_s": round(self._last[pid].cpu_s - self._start.get(pid, 0.0), 2),
                "rss_mb": round(self._last[pid].rss_bytes / 2**20, 1),
            }
            for name, pid in names.items()
            if pid in self._last
        }


# Counts the entries of one stream whose ids are in [ARGV[1], ARGV[2]], and builds two histograms
# over the entries that have field ARGV[3] (equal to ARGV[4] unless that is empty): (id ms - ms of
# field ARGV[5]) and (id ms - ms of field ARGV[7]), each timestamp in integer nanoseconds ("ns") or
# decimal seconds ("s") as ARGV[6] / ARGV[8] say. Returns {count, pairs in the first histogram,
# latency, n, latency, n, ... (first histogram), latency, n, ... (second)}. Paged: no reply is large.
_WINDOW_SCRIPT = """
local function to_ms(ts, unit)
  if ts == nil or ts == '' then return nil end
  if unit == 'ns' then return tonumber(string.sub(ts, 1, -7)) end
  local s = tonumber(ts)
  if s == nil then return nil end
  return math.floor(s * 1000 + 0.5)
end
local count = 0
local sent, recv = {}, {}
local start = ARGV[1]
while true do
  local rows = redis.call('XRANGE', KEYS[1], start, ARGV[2], 'COUNT', 5000)
  for _, row in ipairs(rows) do
    count = count + 1
    local f = row[2]
    local match = false
    local ts_sent, ts_recv = nil, nil
    for j = 1, #f, 2 do
      if f[j] == ARGV[3] and (ARGV[4] == '' or f[j + 1] == ARGV[4]) then match = true end
      if f[j] == ARGV[5] then ts_sent = f[j + 1] end
      if f[j] == ARGV[7] then ts_recv = f[j + 1] end
    end
    if match then
      local id_ms = tonumber(string.match(row[1], '^(%d+)'))
      local a, b = to_ms(ts_sent, ARGV[6]), to_ms(ts_recv, ARGV[8])
      if a ~= nil then sent[id_ms - a] = (sent[id_ms - a] or 0) + 1 end
      if b ~= nil then recv[id_ms - b] = (recv[id_ms - b] or 0) + 1 end
    end
  end
  if #rows < 5000 then break end
  start = '(' .. rows[#rows][1]
end
local out = {count, 0}
for k, v in pairs(sent) do
  out[#out + 1] = k
  out[#out + 1] = v
  out[2] = out[2] + 1
end
for k, v in pairs(recv) do
  out[#out + 1] = k
  out[#out + 1] = v
end
return out
"""


@dataclass(frozen=True, slots=True)
class LatencyField:
    """Which entries carry a latency and where: entries with ``match_field`` (== ``match_value``
    unless empty); the exchange's (simulator's) time of the message in ``sent_field``, the client's
    receive time in ``recv_field``, each in ``"ns"`` (integer) or ``"s"`` (decimal seconds)."""

    match_field: str
    match_value: str
    sent_field: str
    sent_unit: str
    recv_field: str
    recv_unit: str


@dataclass
class WindowStats:
    """``sent``: latency from the simulator's stamp to the Redis commit; ``recv``: from the client's
    receive stamp to the commit (the part the client's own pipeline is responsible for)."""

    messages: int
    sent: dict[int, int]
    recv: dict[int, int]


def streams(client: redis.Redis, pattern: str) -> list[str]:
    """Stream keys matching a glob pattern, sorted."""
    keys = cast(list[bytes], list(client.scan_iter(match=pattern, count=1000, _type="stream")))
    return sorted(k.decode() for k in keys)


def window_stats(
    client: redis.Redis, keys: Iterable[str], first_ms: int, last_ms: int, latency: LatencyField
) -> WindowStats:
    """Entries committed from ``first_ms`` to ``last_ms`` (Redis clock, inclusive) in these streams,
    and the latency histogram of those that carry a timestamp (see `LatencyField`)."""
    script = client.register_script(_WINDOW_SCRIPT)
    stats = WindowStats(0, {}, {})
    lf = latency
    args = [str(first_ms), str(last_ms), lf.match_field, lf.match_value, lf.sent_field, lf.sent_unit]
    args += [lf.recv_field, lf.recv_unit]
    for key in keys:
        out = [int(x) for x in cast(list[int], script(keys=[key], args=args))]
        stats.messages += out[0]
        split = 2 + 2 * out[1]
        for hist, flat in ((stats.sent, out[2:split]), (stats.recv, out[split:])):
            for lat, n in zip(flat[::2], flat[1::2], strict=True):
                hist[lat] = hist.get(lat, 0) + n
    return stats


def percentiles(hist: Mapping[int, int]) -> dict[str, float] | None:
    """p50, p99 and max of a histogram of integer milliseconds (None if empty)."""
    n = sum(hist.values())
    if n == 0:
        return None
    out: dict[str, float] = {}
    wanted = [("p50", 0.50), ("p99", 0.99)]
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        while wanted and seen >= wanted[0][1] * n:
            out[wanted.pop(0)[0]] = float(value)
    out["max"] = float(max(hist))
    return out


def redis_ms(client: redis.Redis) -> int:
    """The Redis server's clock in milliseconds (the clock stream ids are made of)."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
