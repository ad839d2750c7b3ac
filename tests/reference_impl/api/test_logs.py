"""The JSON log lines `mynahil serve` writes: one object a line, whatever the record carries."""

from __future__ import annotations

import json
import logging
import sys

import structlog

from reference_impl.api.logs import JsonLines


def _line(record: logging.LogRecord) -> dict[str, object]:
    text = JsonLines().format(record)
    assert "\n" not in text
    decoded: dict[str, object] = json.loads(text)
    return decoded


def test_an_access_record_carries_its_request_id_and_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "mynahil.access", "levelno": logging.INFO, "levelname": "INFO",
         "msg": "request", "method": "POST", "status": 201, "client": "127.0.0.1",
         "color_message": "\x1b[32mrequest\x1b[0m"}
    )  # fmt: skip
    with structlog.contextvars.bound_contextvars(request_id="trace-42"):
        line = _line(record)
    assert line["event"] == "request"
    assert line["request_id"] == "trace-42"
    assert (line["level"], line["logger"]) == ("info", "mynahil.access")
    assert (line["method"], line["status"], line["client"]) == ("POST", 201, "127.0.0.1")
    assert str(line["timestamp"]).endswith("Z")
    assert "color_message" not in line  # uvicorn's terminal copy of the message
    assert "request_id" not in _line(record)  # bound only while the request ran


def test_arguments_an_exception_and_values_json_cannot_hold() -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s: %s", ("twice", "日本"), None,
            extra={"payload": b"\x00\xff", "where": {"a": 1}},
        )  # fmt: skip
        record.exc_info = sys.exc_info()
    line = _line(record)
    assert line["event"] == "failed twice: 日本"
    assert line["level"] == "error"
    assert "ZeroDivisionError: boom" in str(line["exception"])
    assert line["payload"] == repr(b"\x00\xff")
    assert line["where"] == {"a": 1}
