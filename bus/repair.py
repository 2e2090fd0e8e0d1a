"""The merger's side of the repair channel: one DEALER socket per shard, at most one request out per shard.

Requests are asynchronous: the merger keeps reading the bus (and holding the shard's live frames)
while the shard answers. An unanswered request is sent again after ``timeout`` seconds (a new
request id, so a late answer to the old one is recognised and ignored); after ``attempts`` tries
the merger gives up and reports the range lost. A shard that restarted answers with its new epoch
(or the merger sees the new epoch on the bus first), which ends the wait at once.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
import zmq

from bus import wire
from bus.sequencer import Payload
from ingest.errors import DecodeError

log = structlog.get_logger("merger")


@dataclass
class Ask:
    request_id: int
    epoch: int
    first: int
    last: int
    sent_at: float
    attempts: int = 1


@dataclass
class Answer:
    shard: int
    status: int
    epoch: int  # the epoch asked about
    first: int
    covered_to: int
    last_published: int
    frames: list[tuple[int, Payload]]  # seq, (events, body) of each batch


class RepairClient:
    def __init__(
        self, endpoints: Sequence[str], ctx: zmq.Context[zmq.Socket[bytes]], timeout: float, attempts: int
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.socks: list[zmq.Socket[bytes]] = []
        for ep in endpoints:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVHWM, 0)
            s.connect(ep)
            self.socks.append(s)
        self.pending: dict[int, Ask] = {}
        self.requests = 0
        self.timeouts = 0
        self._ids = itertools.count(1)

    def ask(self, shard: int, epoch: int, first: int, last: int, now: float, attempts: int = 1) -> None:
        rid = next(self._ids)
        self.pending[shard] = Ask(rid, epoch, first, last, now, attempts)
        self.requests += 1
        self._send(shard, wire.repair_request(wire.ASK_FRAMES, rid, epoch, first, last))

    def ack_end(self, shard: int, epoch: int) -> None:
        self._send(shard, wire.repair_request(wire.ACK_END, next(self._ids), epoch, 0, 0))

    def _send(self, shard: int, raw: bytes) -> None:
        if shard >= len(self.socks):
            return
        with contextlib.suppress(zmq.Again):  # an unsent request is sent again after the timeout
            self.socks[shard].send(raw, zmq.NOBLOCK)

    def answers(self, shard: int) -> list[Answer]:
        """Every answer waiting on ``shard``'s socket that matches its outstanding request."""
        out: list[Answer] = []
        sock = self.socks[shard]
        while True:
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                status, rid, _epoch, covered_to, last_published = wire.parse_repair_reply(parts[0])
                ask = self.pending.get(shard)
                if ask is None or ask.request_id != rid:
                    continue  # an answer to a request already given up or re-sent
                del self.pending[shard]
                frames: list[tuple[int, Payload]] = []
                for i in range(1, len(parts) - 2, 3):
                    _, _, seq, events = wire.parse_batch_header(parts[i + 1])
                    frames.append((seq, (events, parts[i + 2])))
            except (DecodeError, IndexError):
                log.error("bad repair answer", shard=shard)
                continue
            out.append(Answer(shard, status, ask.epoch, ask.first, covered_to, last_published, frames))

    def expired(self, now: float) -> list[int]:
        """Shards whose request went unanswered ``attempts`` times; the others are asked again."""
        gave_up = []
        for shard, ask in list(self.pending.items()):
            if now - ask.sent_at < self.timeout:
                continue
            self.timeouts += 1
            if ask.attempts >= self.attempts:
                del self.pending[shard]
                gave_up.append(shard)
                log.error("repair request unanswered; giving up", shard=shard, epoch=ask.epoch,
                          first=ask.first, last=ask.last, attempts=ask.attempts)  # fmt: skip
            else:
                log.warning("repair request unanswered; asking again", shard=shard, first=ask.first,
                            attempts=ask.attempts)  # fmt: skip
                self.ask(shard, ask.epoch, ask.first, ask.last, now, ask.attempts + 1)
        return gave_up

    def cancel(self, shard: int) -> None:
        self.pending.pop(shard, None)

    def close(self) -> None:
        for s in self.socks:
            s.close()
