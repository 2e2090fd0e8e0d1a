"""OKX v5 public WebSocket: wire messages, codec, book checksum, book continuity rule and the spec
the generic runner reads.

Wire facts are in ``../shared/protocols.md`` section C; this package follows them. Books come from
the stream itself (a snapshot on subscribe, then updates chained by ``prevSeqId``/``seqId``); a broken
chain is repaired by resubscribing the one symbol.
"""
