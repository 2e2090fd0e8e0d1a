"""`ingest top` and `ingest status`: the running cluster seen through the parent's ``/status`` document.

- `tools.top.fmt`: pure formatting (ages, rates, sizes, the price chart)
- `tools.top.render`: pure render functions, a status dict (+ one symbol's book and trades) -> rich renderables
- `tools.top.data`: the thin I/O: fetch ``/status`` over HTTP, read a symbol's book and trades from Redis
- `tools.top.app`: the two commands' loops (keys, Ctrl-C, frames)
"""
