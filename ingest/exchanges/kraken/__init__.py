"""Kraken Spot: WebSocket v2 wire messages and codec, the v1 codec for recorded sessions, the book
checksum, the (trivial) continuity rule and the spec the generic runner reads.

Wire facts are in ``../shared/protocols.md`` section B; this package follows them.
"""
