"""``safeguard serve`` logs JSON lines (DESIGN: structured logging on servers)."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from safeguard.cli.serve import JsonLineFormatter, log_config


def test_records_become_json_lines() -> None:
    formatter = JsonLineFormatter()
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "safeguard.registry", logging.ERROR, __file__, 1, "failed %s", ("GET",), sys.exc_info()
        )
    line = formatter.format(record)
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["logger"] == "safeguard.registry"
    assert entry["message"] == "failed GET"
    assert "ValueError: bad" in entry["exception"]
    assert "\n" not in line


def test_config_is_valid_for_dictconfig(capsys: pytest.CaptureFixture[str]) -> None:
    config = log_config("info")
    config["handlers"]["default"]["stream"] = "ext://sys.stdout"
    logging.config.dictConfig(config)
    try:
        logging.getLogger("safeguard.registry").info("hello %d", 1)
        assert json.loads(capsys.readouterr().out.strip())["message"] == "hello 1"
    finally:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "safeguard"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
