"""Binance Spot: wire messages, codec, book continuity rule and the spec the generic runner reads.

Wire facts are in ``../shared/protocols.md`` section A; this package follows them.
"""
