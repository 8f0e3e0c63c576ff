"""Repeated log lines (aiokafka while Kafka is down) are thinned out, not lost silently."""

from __future__ import annotations

import logging

from ingest.logfilter import RateLimitFilter


def test_repeats_are_dropped_and_counted() -> None:
    f = RateLimitFilter(3600)
    make = lambda msg: logging.LogRecord("aiokafka", logging.ERROR, "x", 1, msg, (), None)  # noqa: E731
    assert f.filter(make("Unable to update metadata from %s"))
    assert not any(f.filter(make("Unable to update metadata from %s")) for _ in range(5))
    assert f.filter(make("another message"))
    f.interval_s = 0
    again = make("Unable to update metadata from %s")
    assert f.filter(again)
    assert "(and 5 like it suppressed)" in again.getMessage().replace("%s", "")
