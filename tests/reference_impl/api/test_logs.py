"""The JSON log lines `mynahil serve` writes: one object a line, whatever the record carries."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog

from mynahil.reference_impl.api.logs import JsonLines, configure_logging


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


def test_records_go_to_stderr_as_it_is_when_they_are_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A harness that swaps stderr while the logging is set up (pytest's capture, typer's
    CliRunner) closes its stream later: records written after that must reach the stderr of
    the moment, not fail with 'I/O operation on closed file' on every request."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        configure_logging("json", "info")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("mynahil.test").info("after the swap")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    written = second.getvalue()
    assert "Logging error" not in written
    assert json.loads(written.splitlines()[-1])["event"] == "after the swap"
