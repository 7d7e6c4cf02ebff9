"""Suite-wide: tests never download.  Data sets and FID weights are fetched on first use unless
``$BENCHBED_OFFLINE`` is set, so every test runs offline; the download tests
(``tests/datasets/test_downloads.py``) lift it and point the mirrors at a local server."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHBED_OFFLINE", "1")
