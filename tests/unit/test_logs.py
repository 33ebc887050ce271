"""Logging keeps working when the stream that was stderr at configuration time is gone
(a CLI runner or a test swapped sys.stderr, then closed its stand-in)."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from meterline.logs import configure_logging


def test_logs_go_to_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    real = sys.stderr
    temporary = io.StringIO()
    sys.stderr = temporary
    try:
        configure_logging(False, "INFO")
    finally:
        sys.stderr = real
        temporary.close()
    structlog.get_logger("meterline.test").error("still logging", where="after the swap")
    assert "still logging" in capsys.readouterr().err
