from __future__ import annotations

import json
import logging

from ticker.logs import JsonFormatter, OncePerDay


def record(message: str, once: object | None = None, level: int = logging.WARNING) -> logging.LogRecord:
    rec = logging.LogRecord("ticker.poller", level, __file__, 1, message, (), None)
    if once is not None:
        rec.once = once
    return rec


def test_a_per_coin_problem_is_one_warning_a_day():
    now = [0.0]
    once = OncePerDay(monotonic=lambda: now[0])
    key = ("coingecko", "BTC", "usd", "price")
    passed = []
    for _ in range(60):  # an hour of rounds
        passed.append(once.filter(record("rejecting BTC/usd price 0.0", key)))
        now[0] += 60
    assert passed.count(True) == 1
    assert once.filter(record("another coin", ("coingecko", "ETH", "usd", "price")))
    now[0] += 86400
    assert once.filter(record("rejecting BTC/usd price 0.0", key))  # a day later it is said again


def test_records_without_a_key_always_pass():
    once = OncePerDay()
    assert all(once.filter(record("provider coingecko failing: HTTP 500")) for _ in range(5))


def test_json_lines_for_log_shippers():
    line = json.loads(JsonFormatter().format(record('a "quoted" message', level=logging.INFO)))
    assert line["level"] == "INFO" and line["logger"] == "ticker.poller" and line["message"] == 'a "quoted" message'
