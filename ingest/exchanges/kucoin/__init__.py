"""KuCoin spot: wire messages, codec, the bullet token, the level2 continuity rule, the recent-trades
history and the spec the generic runner reads.

Wire facts are in ``../shared/protocols.md`` section E'; this package follows them. Each session
first POSTs ``/api/v1/bullet-public`` for a token and a server (`endpoint`), waits for ``welcome``,
then subscribes ``/market/level2`` and ``/market/match``. Books are calibrated against a REST
``level2_100`` snapshot's ``sequence`` (`sequence`); a session is replaced before its token's 24 h
run out (``session_life``).
"""
