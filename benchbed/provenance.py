"""Provenance recorded with every result: versions, git commit, device, plugins."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import benchbed


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


@functools.cache
def git_commit() -> str:
    """The commit of the benchbed checkout (``+dirty`` when modified), or ``"unknown"`` for an install."""
    root = Path(benchbed.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


@functools.cache
def environment() -> dict[str, Any]:
    """Library versions, Python, platform and the commit: computed once per process."""
    return {
        "benchbed": benchbed.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "scikit-learn": _version("scikit-learn"),
        "pluggy": _version("pluggy"),
    }


def device_description(device: Any) -> str:
    """``cpu (N threads)`` or the CUDA device name."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"
