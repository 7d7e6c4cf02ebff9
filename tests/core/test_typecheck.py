"""The core package type-checks: ``mypy benchbed`` with the configuration in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mypy_benchbed_is_clean(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    if not (ROOT / "pyproject.toml").is_file():  # pragma: no cover - an installed copy of the tests
        pytest.skip("needs the source checkout (its pyproject.toml holds the mypy configuration)")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"), "benchbed"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mypy benchbed failed:\n{proc.stdout}\n{proc.stderr}"
