"""The overall call deadline and the ``Retry-After`` bounds, below the channels."""

from __future__ import annotations

import math
import socket
import time
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.channels.base import RETRY_AFTER_CAP, Outcome, bounded_retry_after
from notifications.channels.deadline import MAX_DEADLINE_SECONDS, Deadline, DeadlineExceeded
from notifications.channels.http import parse_retry_after
from notifications.sending import ClaimLease


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, MAX_DEADLINE_SECONDS + 1])
def test_a_deadline_is_positive_and_bounded(seconds):
    with pytest.raises(ValueError, match=f"at most {MAX_DEADLINE_SECONDS:g} seconds"):
        Deadline(seconds)


def test_a_claim_lease_outlasts_every_deadline():
    with pytest.raises(ValueError, match="longer than any call deadline"):
        ClaimLease(timedelta(seconds=MAX_DEADLINE_SECONDS))


@pytest.mark.parametrize(
    ("asked", "bounded"),
    [(None, None), (math.nan, None), (-1.0, None), (0.0, 0.0), (7.0, 7.0), (1e12, RETRY_AFTER_CAP)],
)
def test_retry_after_is_bounded(asked, bounded):
    assert bounded_retry_after(asked) == bounded
    assert Outcome.retry("slow down", after=asked).retry_after == bounded


@given(st.text(max_size=60))
def test_any_retry_after_header_parses_to_nothing_or_a_bounded_delay(value):
    after = parse_retry_after(value, now=1_760_000_000.0)

    assert after is None or 0 <= after <= RETRY_AFTER_CAP


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def wait_until_expired(call, timeout=5.0):
    limit = time.monotonic() + timeout
    while not call.expired:
        assert time.monotonic() < limit
        time.sleep(0.01)


def read_to_the_end(sock):
    """What a library does with an answer: read until it is whole (here: never), and
    treat an early end of file as a dropped connection."""
    if sock.recv(1) == b"":
        raise ConnectionResetError("connection closed mid-answer")


def test_a_read_that_never_ends_is_stopped_at_the_deadline(listener):
    started = time.monotonic()
    with (
        pytest.raises(DeadlineExceeded, match=r"within 0\.3s"),
        Deadline(0.3).enforce(),
        socket.create_connection(listener.getsockname(), timeout=10) as sock,
    ):
        read_to_the_end(sock)

    assert time.monotonic() - started < 3


def test_a_connect_after_the_deadline_is_refused(listener):
    with pytest.raises(DeadlineExceeded), Deadline(0.1).enforce() as call:
        wait_until_expired(call)
        socket.create_connection(listener.getsockname(), timeout=10)


def test_the_shorter_of_nested_deadlines_stops_the_call(listener):
    with (
        pytest.raises(DeadlineExceeded, match=r"within 0\.3s"),
        Deadline(0.3).enforce(),
        Deadline(60).enforce() as inner,
        socket.create_connection(listener.getsockname(), timeout=10) as sock,
    ):
        try:
            read_to_the_end(sock)
        finally:
            assert not inner.expired


def test_a_call_that_ends_in_time_is_untouched(listener):
    with Deadline(5).enforce() as call:
        sock = socket.create_connection(listener.getsockname(), timeout=10)
        peer, _ = listener.accept()
        with sock, peer:
            peer.sendall(b"ok")
            assert sock.recv(2) == b"ok"

    assert not call.expired
