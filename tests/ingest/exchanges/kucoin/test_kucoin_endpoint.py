"""The bullet-public answer -> where a session connects, how often it pings, when it is dead."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import DecodeError
from ingest.exchanges.base import Endpoint
from ingest.exchanges.kucoin.endpoint import BULLET, decode_bullet
from ingest.exchanges.kucoin.spec import SPEC

# protocols.md E', "Token" (the token shortened).
BULLET_BODY = (
    b'{"code":"200000","data":{"token":"2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M",'
    b'"instanceServers":[{"endpoint":"wss://ws-api-spot.kucoin.com/","encrypt":true,"protocol":"websocket",'
    b'"pingInterval":18000,"pingTimeout":10000}]}}'
)


def test_the_documented_answer() -> None:
    assert decode_bullet(BULLET_BODY, "c0-7") == Endpoint(
        url=(
            "wss://ws-api-spot.kucoin.com/?token=2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M"
            "&connectId=c0-7"
        ),
        ping_interval=18.0,
        liveness_timeout=28.0,
    )


def test_the_spec_posts_to_bullet_public() -> None:
    assert SPEC.endpoint_request is BULLET
    assert BULLET.url("https://api.kucoin.com/") == "https://api.kucoin.com/api/v1/bullet-public"
    assert SPEC.greeting and SPEC.app_ping_periodic and SPEC.app_ping == '{"id":"ping","type":"ping"}'
    assert SPEC.session_life == 23 * 3600


def test_older_intervals_and_odd_characters_are_taken_as_given() -> None:
    body = (
        b'{"code":"200000","data":{"token":"a+b/c=","instanceServers":[{"endpoint":"ws://127.0.0.1:9/kucoin/ws?x=1",'
        b'"protocol":"websocket","pingInterval":50000,"pingTimeout":10000}]}}'
    )
    endpoint = decode_bullet(body, "id 1")
    assert endpoint.url == "ws://127.0.0.1:9/kucoin/ws?x=1&token=a%2Bb%2Fc%3D&connectId=id%201"
    assert (endpoint.ping_interval, endpoint.liveness_timeout) == (50.0, 60.0)


def test_the_first_websocket_server_is_used() -> None:
    body = (
        b'{"code":"200000","data":{"token":"t","instanceServers":['
        b'{"endpoint":"https://x","protocol":"http","pingInterval":1,"pingTimeout":1},'
        b'{"endpoint":"wss://a/","protocol":"websocket","pingInterval":1000,"pingTimeout":500}]}}'
    )
    assert decode_bullet(body, "c").url == "wss://a/?token=t&connectId=c"


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"400003","msg":"KC-API-KEY not exists"}',
        b'{"code":"200000","data":{"token":"","instanceServers":[{"endpoint":"wss://a","protocol":"websocket","pingInterval":1,"pingTimeout":1}]}}',
        b'{"code":"200000","data":{"token":"t","instanceServers":[]}}',
        b'{"code":"200000","data":{"token":"t","instanceServers":[{"endpoint":"https://a","protocol":"websocket","pingInterval":1,"pingTimeout":1}]}}',
        b'{"code":"200000","data":{"token":"t","instanceServers":[{"endpoint":"wss://a","protocol":"websocket","pingInterval":0,"pingTimeout":1}]}}',
        b'{"code":"200000","data":{"token":"t","instanceServers":[{"endpoint":"wss://a","protocol":"websocket","pingInterval":18000}]}}',
        b'{"code":"200000","data":{"token":"t"}}',
        b'{"code":"200000","data":[]}',
        b"<html>502</html>",
    ],
)
def test_a_body_without_an_endpoint_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_bullet(body, "c")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["code", "data", "token", "instanceServers", "endpoint", "protocol", "pingInterval",
                         "pingTimeout", "encrypt", "x"]),
        inner, max_size=6,
    ),
    max_leaves=20,
)  # fmt: skip


@settings(derandomize=True, max_examples=300)
@given(st.one_of(st.binary(max_size=200), _JSON.map(lambda v: json.dumps(v).encode())))
def test_any_body_is_an_endpoint_or_a_decode_error(body: bytes) -> None:
    _endpoint_or_decode_error(body)


def _endpoint_or_decode_error(body: bytes) -> None:
    try:
        endpoint = decode_bullet(body, "c")
    except DecodeError as exc:
        assert str(exc)
        return
    assert endpoint.url.startswith(("ws://", "wss://")) and endpoint.ping_interval and endpoint.liveness_timeout


_PATHS = [("code",), ("data",), ("data", "token"), ("data", "instanceServers")] + [
    ("data", "instanceServers", 0, key) for key in ("endpoint", "protocol", "pingInterval", "pingTimeout", "encrypt")
]


@settings(derandomize=True, max_examples=300)
@given(st.sampled_from(_PATHS), _JSON)
def test_the_documented_answer_with_any_one_value_replaced_is_an_endpoint_or_a_decode_error(
    path: tuple[str | int, ...], value: object
) -> None:
    msg = json.loads(BULLET_BODY)
    target = msg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _endpoint_or_decode_error(json.dumps(msg).encode())
