"""The simulator options checker every exchange module declares its options with."""

from __future__ import annotations

import pytest

from tools.sim.options import Option, at_most_seconds, check, flag, one_of, ratio, seconds, seconds_or_zero, whole

OPTIONS = {
    "on": Option(False, flag),
    "wait": Option(1, seconds),
    "reset": Option(0, seconds_or_zero),
    "life": Option(5.0, at_most_seconds(10)),
    "count": Option(3, whole),
    "share": Option(0.5, ratio),
    "scope": Option("a", one_of("a", "b")),
}


def test_defaults_are_filled_in_and_numbers_converted() -> None:
    assert check("x", {"wait": 2, "scope": "b"}, OPTIONS) == {
        "on": False, "wait": 2.0, "reset": 0.0, "life": 5.0, "count": 3, "share": 0.5, "scope": "b",
    }  # fmt: skip
    assert type(check("x", {}, OPTIONS)["wait"]) is float


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"wiat": 1}, r"unknown x simulator option\(s\) \['wiat'\] \(known: \['count', 'life'"),
        ({"on": 1}, "x simulator option 'on' must be true or false"),
        ({"wait": 0}, "'wait' must be a number of seconds above 0"),
        ({"wait": True}, "'wait' must be a number of seconds above 0"),
        ({"reset": -1}, "'reset' must be a number of seconds >= 0"),
        ({"life": 11}, r"'life' must be a number of seconds above 0 \(at most 10\)"),
        ({"count": 1.5}, "'count' must be a whole number >= 0"),
        ({"share": "half"}, "'share' must be a number"),
        ({"share": 2}, "'share' must be between 0 and 1"),
        ({"scope": "c"}, r"'scope' must be one of \['a', 'b'\]"),
    ],
)
def test_a_bad_option_is_named_with_what_it_must_be(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check("x", raw, OPTIONS)
