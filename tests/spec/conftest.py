"""The generated study files' figures, printed at the end of the session."""

from __future__ import annotations

import pytest
from profiles import summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many generated files each test tried, and how each came out."""
    lines = summary()
    if lines:
        terminalreporter.section("generated study files")
        for line in lines:
            terminalreporter.write_line(line)
