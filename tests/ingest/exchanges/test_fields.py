"""The shared field readers: exact values, and DecodeError (only) with the key named."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import DecodeError
from ingest.exchanges import fields as f


def test_field_returns_any_value_and_names_a_missing_key() -> None:
    assert f.field({"a": None}, "a") is None
    assert f.field({"a": [1]}, "a") == [1]
    with pytest.raises(DecodeError, match=r"^missing field 'b'$"):
        f.field({"a": 1}, "b")


def test_string() -> None:
    assert f.string({"s": "BTCUSDT"}, "s") == "BTCUSDT"
    assert f.string({"s": ""}, "s") == ""
    with pytest.raises(DecodeError, match=r"^field 's' must be a string, got int$"):
        f.string({"s": 1}, "s")
    with pytest.raises(DecodeError, match=r"^field 's' must be a string, got NoneType$"):
        f.string({"s": None}, "s")
    with pytest.raises(DecodeError, match=r"^missing field 's'$"):
        f.string({}, "s")


def test_opt_string() -> None:
    assert f.opt_string({"id": "7"}, "id") == "7"
    assert f.opt_string({}, "id") is None
    assert f.opt_string({"id": None}, "id") is None
    with pytest.raises(DecodeError, match=r"^field 'id' must be a string, got int$"):
        f.opt_string({"id": 7}, "id")


def test_integer_refuses_bool_float_and_string() -> None:
    assert f.integer({"E": 1672515782136}, "E") == 1672515782136
    assert f.integer({"E": -1}, "E") == -1
    for value, name in ((True, "bool"), (1.0, "float"), ("1", "str")):
        with pytest.raises(DecodeError, match=rf"^field 'E' must be an integer, got {name}$"):
            f.integer({"E": value}, "E")
    with pytest.raises(DecodeError, match=r"^missing field 'E'$"):
        f.integer({}, "E")


def test_opt_integer() -> None:
    assert f.opt_integer({"seqId": 0}, "seqId") == 0
    assert f.opt_integer({}, "seqId") is None
    assert f.opt_integer({"seqId": None}, "seqId") is None
    with pytest.raises(DecodeError, match=r"^field 'seqId' must be an integer, got bool$"):
        f.opt_integer({"seqId": False}, "seqId")


def test_boolean_refuses_integers() -> None:
    assert f.boolean({"m": True}, "m") is True
    assert f.boolean({"m": False}, "m") is False
    with pytest.raises(DecodeError, match=r"^field 'm' must be a boolean, got int$"):
        f.boolean({"m": 1}, "m")
    with pytest.raises(DecodeError, match=r"^missing field 'm'$"):
        f.boolean({}, "m")


@pytest.mark.parametrize("text", ["0", "5", "0.35130000", "12345.6"])
def test_decimal_keeps_the_text(text: str) -> None:
    assert f.decimal({"p": text}, "p") == text
    assert f.DECIMAL.fullmatch(text) and f.plain_decimal(text)


@pytest.mark.parametrize("text", ["", "-1", "+1", "1.", ".5", "1e5", "1,5", " 1", "NaN", "1.2.3"])
def test_decimal_refuses_anything_but_plain_digits(text: str) -> None:
    with pytest.raises(DecodeError, match=r"^field 'p' is not a decimal number: "):
        f.decimal({"p": text}, "p")
    assert f.DECIMAL.fullmatch(text) is None and not f.plain_decimal(text)


def test_decimal_wants_a_string_and_cuts_long_values() -> None:
    with pytest.raises(DecodeError, match=r"^field 'p' must be a string, got float$"):
        f.decimal({"p": 0.5}, "p")
    with pytest.raises(DecodeError) as err:
        f.decimal({"p": "x" * 100}, "p")
    assert str(err.value) == f"field 'p' is not a decimal number: {'x' * 40!r}"


def test_decimal_has_at_most_40_digits_either_side_of_the_point() -> None:
    assert f.decimal({"p": "9" * 40 + "." + "1" * 40}, "p")
    for text in ("9" * 41, "1." + "0" * 41, "9" * 5000):
        with pytest.raises(DecodeError, match=r"^field 'p' is not a decimal number: "):
            f.decimal({"p": text}, "p")


@given(st.text(alphabet="0123456789.-+e \u00b2\u0663x", max_size=90) | st.from_regex(f.DECIMAL, fullmatch=True))
def test_plain_decimal_is_the_decimal_pattern(text: str) -> None:
    assert f.plain_decimal(text) == (f.DECIMAL.fullmatch(text) is not None)


def test_plain_decimal_at_its_bounds() -> None:
    for text, ok in [("9" * 40, True), ("9" * 41, False), ("1." + "0" * 40, True), ("1." + "0" * 41, False),
                     ("9" * 40 + "." + "1" * 40, True), ("9" * 41 + "." + "1" * 39, False), ("1.2.3", False),
                     ("\u0661", False), ("\u00b2", False), (".", False), ("", False)]:  # fmt: skip
        assert f.plain_decimal(text) is ok and (f.DECIMAL.fullmatch(text) is not None) is ok, text


def test_positive_decimal_refuses_zero_in_any_spelling() -> None:
    assert f.positive_decimal({"p": "0.00000001"}, "p") == "0.00000001"
    for text in ("0", "0.0", "00.00000000"):
        assert f.is_zero(text)
        with pytest.raises(DecodeError, match=rf"^field 'p' must not be zero: {text!r}$"):
            f.positive_decimal({"p": text}, "p")
    assert not f.is_zero("10")


def test_natural_is_a_non_negative_64_bit_integer() -> None:
    assert f.natural({"t": 0}, "t") == 0
    assert f.natural({"t": 2**63 - 1}, "t") == 2**63 - 1
    for value in (-1, 2**63, 2**64):
        with pytest.raises(DecodeError, match=rf"^field 't' must be a non-negative 64-bit integer, got {value}$"):
            f.natural({"t": value}, "t")
    with pytest.raises(DecodeError, match=r"^field 't' must be an integer, got str$"):
        f.natural({"t": "1"}, "t")


def test_ms_time_fits_64_bit_nanoseconds() -> None:
    assert f.ms_time({"E": 1672515782136}, "E") == 1672515782136
    assert f.ms_time({"E": f.MAX_MS}, "E") * 1_000_000 <= f.INT64_MAX
    for value in (-1, f.MAX_MS + 1):
        with pytest.raises(DecodeError, match=rf"^field 'E' is not a millisecond time since the epoch: {value}$"):
            f.ms_time({"E": value}, "E")


@pytest.mark.parametrize("name", ["BTC", "USDT", "1000SATS", "ETH2.S", "币安人生", "A_B"])
def test_asset_names(name: str) -> None:
    assert f.ASSET.fullmatch(name)


@pytest.mark.parametrize("name", ["", "A-B", "A/B", "A B", "A\x00", "A\n", "\ud800", "A:B", "A*", "X" * 31])
def test_not_asset_names(name: str) -> None:
    assert f.ASSET.fullmatch(name) is None


def test_loads_object() -> None:
    assert f.loads_object(b'{"a": 1, "b": [1.5, "x"]}') == {"a": 1, "b": [1.5, "x"]}
    assert f.loads_object('{"e": "trade"}') == {"e": "trade"}


def test_loads_object_bad_json_carries_an_excerpt() -> None:
    with pytest.raises(DecodeError, match=r"^bad JSON \(") as err:
        f.loads_object(b"{not json")
    assert err.value.excerpt == "{not json"


@pytest.mark.parametrize(
    ("frame", "name"), [(b"[1, 2]", "list"), (b'"pong"', "str"), (b"3", "int"), (b"null", "NoneType")]
)
def test_loads_object_refuses_other_top_levels(frame: bytes, name: str) -> None:
    with pytest.raises(DecodeError, match=rf"^expected a JSON object, got {name}: ") as err:
        f.loads_object(frame)
    assert err.value.excerpt == frame.decode()


def test_loads_object_refuses_a_non_text_frame() -> None:
    frame: Any = 12
    with pytest.raises(DecodeError, match=r"^bad JSON \(") as err:
        f.loads_object(frame)
    assert err.value.excerpt == ""


def test_cached_symbol_derives_once_and_caches() -> None:
    calls: list[str] = []

    def derive(native: str) -> str:
        calls.append(native)
        return native.replace("USDT", "-USDT")

    cache = {"XBT/USD": "BTC-USD"}
    assert f.cached_symbol(cache, "XBT/USD", derive) == "BTC-USD"
    assert f.cached_symbol(cache, "ETHUSDT", derive) == "ETH-USDT"
    assert f.cached_symbol(cache, "ETHUSDT", derive) == "ETH-USDT"
    assert calls == ["ETHUSDT"]
    assert cache == {"XBT/USD": "BTC-USD", "ETHUSDT": "ETH-USDT"}


def test_cached_symbol_turns_a_value_error_into_a_decode_error() -> None:
    def derive(native: str) -> str:
        raise ValueError(f"no known quote asset in {native!r}")

    cache: dict[str, str] = {}
    with pytest.raises(DecodeError, match=r"^no known quote asset in 'FOO'$"):
        f.cached_symbol(cache, "FOO", derive)
    assert cache == {}


READERS: list[Callable[[dict[str, Any], str], object]] = [
    f.field,
    f.string,
    f.opt_string,
    f.integer,
    f.opt_integer,
    f.boolean,
    f.decimal,
    f.positive_decimal,
    f.natural,
    f.ms_time,
]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
@pytest.mark.parametrize("value", [[], {}, 1.5, object()])
def test_readers_raise_only_decode_error(reader: Callable[[dict[str, Any], str], object], value: object) -> None:
    with contextlib.suppress(DecodeError):  # any other exception fails the test
        reader({"k": value}, "k")
