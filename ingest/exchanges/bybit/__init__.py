"""Bybit v5 public spot WebSocket: wire messages, codec, book continuity rule, REST trade history and
the spec the generic runner reads.

Wire facts are in ``../shared/protocols.md`` section E; this package follows them. Books come from
the stream itself (a snapshot on subscribe, then deltas numbered by ``u``, +1 each); every snapshot
resets the book, ``u == 1`` is a restart of Bybit's book service (the message is the whole book), and a
break in ``u`` is repaired by resubscribing the one symbol. There is no checksum.
"""
