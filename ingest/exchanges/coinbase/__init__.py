"""Coinbase Advanced Trade public WebSocket: wire messages, codec, the per-connection ``sequence_num``
check, book continuity rule, REST trade history and the spec the generic runner reads.

Wire facts are in ``../shared/protocols.md`` section D; this package follows them. Books come from
the stream (a ``level2`` snapshot per product on subscribe, then updates with absolute sizes and no
per-product sequence). Integrity rests on the envelope's ``sequence_num``, one counter per connection
across every channel (`ingest.exchanges.coinbase.sequence`): a hole makes every book of the session
suspect, so the codec emits a `Resync` and the runner resubscribes ``level2`` for each book.
"""
