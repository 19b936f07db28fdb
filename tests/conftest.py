"""Fixtures for every test module."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich wraps at 80 columns when not on a terminal; long tmp paths would break."""
    monkeypatch.setenv("COLUMNS", "400")
