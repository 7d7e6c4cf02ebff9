"""Exception types.  Every message names the file, key, plugin or value at fault."""

from __future__ import annotations


class BenchbedError(Exception):
    """Base class of every error benchbed raises on purpose."""


class PluginError(BenchbedError):
    """A plugin failed to load, registered something invalid, or clashed with another plugin."""


class SuiteError(BenchbedError):
    """A suite file is malformed: unknown component, unknown parameter, wrong type, bad value."""


class SuiteErrors(SuiteError):
    """Several independent problems of one suite file, found in one pass: ``problems``, one message each."""

    def __init__(self, problems: list[SuiteError]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))


class StoreError(BenchbedError):
    """The result store cannot be opened or holds something unexpected."""


class DataError(BenchbedError):
    """A data set's files are missing, truncated or fail their checksum."""


class DataContractError(DataError):
    """A data set loaded, but what it returned breaks the data-set contract (``DataBundle.problems``):
    a bug of the data set's plugin, not a missing file."""


class NotApplicable(BenchbedError):
    """Raised by a metric at evaluation time when it cannot apply (e.g. missing FID weights).

    The runner stores the cell as ``n/a`` with ``str(exc)`` as the reason instead of ``failed``.
    """


class Diverged(BenchbedError):
    """Training produced a non-finite loss or an exploding energy; the cell is stored as ``diverged``."""
