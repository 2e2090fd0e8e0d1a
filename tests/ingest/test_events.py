"""The events' constructors: the dataclass contract, whatever ``__init__`` stores the fields."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

from ingest.events import EVENT_TYPES, BookDelta, Trade


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_the_constructor_takes_the_fields_in_order_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in dataclasses.fields(cls)]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(cls)
    ]
    values = {f.name: f"v{i}" for i, f in enumerate(dataclasses.fields(cls))}
    by_position, by_name = cls(*values.values()), cls(**values)
    assert by_position == by_name and hash(by_position) == hash(by_name)
    assert dataclasses.asdict(by_name) == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_name.symbol = "X"
    with pytest.raises(TypeError):
        cls(*list(values.values())[:2])


def test_defaults_replace_and_repr() -> None:
    trade = Trade("binance", "BTC-USDT", "BTCUSDT", "7", "1.5", "2", "buy", 1, 2)
    assert trade.origin == "live"
    late = dataclasses.replace(trade, origin="backfill")
    assert (late.origin, late.trade_id, trade.origin) == ("backfill", "7", "live")
    delta = BookDelta("binance", "BTC-USDT", "BTCUSDT", (("1", "2"),), (), 5, 6, 7, 8)
    assert delta.checksum is None and delta.bids == (("1", "2"),)
    assert repr(delta).startswith("BookDelta(exchange='binance', symbol='BTC-USDT'")
    same = BookDelta("binance", "BTC-USDT", "BTCUSDT", (("1", "2"),), (), 5, 6, 7, 8, 3)
    assert dataclasses.replace(delta, checksum=3) == same


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_pickle_and_copy_give_an_equal_event_of_the_same_class(cls: type) -> None:
    event = cls(*(f"v{i}" for i, _ in enumerate(dataclasses.fields(cls))))
    for again in (pickle.loads(pickle.dumps(event)), copy.copy(event), copy.deepcopy(event)):
        assert type(again) is cls and again == event
        assert [getattr(again, f.name) for f in dataclasses.fields(cls)] == [
            getattr(event, f.name) for f in dataclasses.fields(cls)
        ]
    assert type(event).__name__ == cls.__name__ and isinstance(event, cls)
