"""Downloads: ``benchbed download NAME...`` and the fetching that components use on first use.

Two layers, neither of which knows any data set or metric:

* :func:`download` looks registered data sets and metrics up by name, builds each with its factory's
  defaults and calls its :class:`benchbed.contracts.Downloadable` ``download(root)`` method; a
  component without one is an error saying it has nothing to download.
* :func:`fetch` is what such a method calls for one file: the mirrors are tried in turn, the bytes
  go to a temporary file next to the destination (renamed into place only once the checksum
  matched, so a reader never sees a partial or wrong file), with a tqdm bar on a terminal and plain
  lines otherwise.

``BENCHBED_OFFLINE=1`` (also ``true``/``yes``/``on``) forbids every download: :func:`fetch` then
raises :class:`DownloadError` with ``unreachable`` set before touching the network, exactly as when
no mirror can be reached.  Components turn that into their "put these files there" message.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from benchbed import __version__
from benchbed.contracts import Downloadable
from benchbed.errors import DataError, SuiteError

if TYPE_CHECKING:
    from benchbed.registry import Registry

OFFLINE_ENV = "BENCHBED_OFFLINE"
TIMEOUT_S = 60.0
_CHUNK = 1 << 16
_USER_AGENT = f"benchbed/{__version__} (python urllib)"


def offline() -> bool:
    """Whether ``$BENCHBED_OFFLINE`` forbids downloads (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Checksum:
    """An expected digest: the full hex digest, or (as torch.hub's ``check_hash``) a prefix of it."""

    algorithm: Literal["md5", "sha256"]
    hexdigest: str

    def __post_init__(self) -> None:
        digest = self.hexdigest.lower()
        if len(digest) < 8 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"checksum {self.hexdigest!r}: expected at least 8 hex digits")
        object.__setattr__(self, "hexdigest", digest)

    def matches(self, actual: str) -> bool:
        """Whether the file's full hex digest ``actual`` starts with the expected one."""
        return actual.lower().startswith(self.hexdigest)

    def __str__(self) -> str:
        return f"{self.algorithm.upper()} {self.hexdigest}"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Attempt:
    """One mirror's outcome: its URL, what went wrong, and whether the network was out of reach."""

    url: str
    reason: str
    unreachable: bool = False
    bad_checksum: bool = False


class DownloadError(DataError):
    """No mirror delivered a file with the right checksum.

    Attributes:
        what: who wanted the file (``"data set 'mnist'"``), the message's first words.
        dest: where the file was to go.
        attempts: each mirror's outcome, in order (empty when offline).
        offline: ``$BENCHBED_OFFLINE`` forbade the download (no request was made).
        unreachable: offline, or no mirror could be reached at all (no network): the caller may
            answer with its "put the file there yourself" message instead.
        bad_checksum: some mirror delivered bytes with the wrong checksum.
    """

    def __init__(self, what: str, dest: Path, attempts: Sequence[Attempt], *, offline: bool = False) -> None:
        self.what = what
        self.dest = dest
        self.attempts = tuple(attempts)
        self.offline = offline
        self.unreachable = offline or (bool(self.attempts) and all(a.unreachable for a in self.attempts))
        self.bad_checksum = any(a.bad_checksum for a in self.attempts)
        super().__init__(f"{what}: {self.summary()}; the file belongs at {dest}")

    def summary(self) -> str:
        """The reason without local paths (safe to publish, e.g. as a metric's n/a reason)."""
        if self.offline:
            return f"${OFFLINE_ENV} is set, so {self.dest.name} was not downloaded"
        tried = "; ".join(f"{a.url}: {a.reason}" for a in self.attempts)
        kind = "no mirror could be reached (no network?)" if self.unreachable else "download failed"
        return f"{kind} for {self.dest.name}: {tried}"


class _Meter:
    """Bytes received: a tqdm bar on a terminal, else a line at the start, every 25 % and at the end."""

    def __init__(self, label: str, total: int | None, *, bars: bool | None, stream: TextIO | None) -> None:
        self.stream = stream or sys.stderr
        if bars is None:
            bars = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self.total = total
        self.n = 0
        self._next = 0.25
        self._bar = None
        if bars:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                             file=self.stream, dynamic_ncols=True, leave=False)
        else:
            size = f" ({_size(total)})" if total else ""
            self._line(f"downloading{size}")

    def _line(self, message: str) -> None:
        print(f"[benchbed] {self.label}: {message}", file=self.stream, flush=True)

    def update(self, n: int) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.total and self.n < self.total and self.n >= self._next * self.total:
            self._line(f"{int(100 * self.n / self.total)}% of {_size(self.total)}")
            while self._next * self.total <= self.n:
                self._next += 0.25

    def close(self, message: str) -> None:
        if self._bar is not None:
            self._bar.close()
        self._line(message)


def _size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _unreachable(exc: BaseException) -> bool:
    """A connection that never got an answer (DNS, refused, timed out), not an answer we disliked."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        return True
    return isinstance(exc, ConnectionRefusedError | TimeoutError | ConnectionResetError)


def _fetch_one(url: str, tmp: Path, label: str, bars: bool | None, stream: TextIO | None) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:  # noqa: S310
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        meter = _Meter(label, total, bars=bars, stream=stream)
        try:
            while block := response.read(_CHUNK):
                out.write(block)
                meter.update(len(block))
        finally:
            meter.close(f"received {_size(meter.n)} from {url}")
        if total is not None and meter.n != total:
            raise http.client.IncompleteRead(b"", total - meter.n)


def fetch(
    urls: Sequence[str],
    dest: Path,
    checksum: Checksum,
    *,
    what: str,
    bars: bool | None = None,
    stream: TextIO | None = None,
) -> Path:
    """Download ``dest`` from the first mirror in ``urls`` that delivers it with ``checksum``.

    A mirror that cannot be reached, answers with an HTTP error, breaks off, or sends bytes with
    another checksum is skipped for the next one.  Only a verified file is renamed into place;
    nothing else is left behind (not even folders this call created).

    Args:
        urls: the mirrors' full URLs of this file, tried in order.
        dest: where the file goes (an existing file there is replaced).
        checksum: the expected digest.
        what: who wants the file, e.g. ``"data set 'mnist'"`` (starts every message).
        bars: tqdm bar (``True``) or plain lines (``False``); default: a bar when ``stream`` is a TTY.
        stream: where progress goes (default stderr).

    Raises:
        DownloadError: offline (no request made), or every mirror failed; it names the file, each
            URL with its reason, the expected and received checksums, and where the file belongs.
    """
    if offline():
        raise DownloadError(what, dest, (), offline=True)
    if not urls:
        raise DownloadError(what, dest, (Attempt("(no URL)", "no mirror is known for this file"),))
    created = _make_parents(dest.parent)
    attempts: list[Attempt] = []
    try:
        for url in urls:
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            os.close(fd)
            tmp = Path(name)
            try:
                _fetch_one(url, tmp, f"{what} {dest.name}", bars, stream)
                actual = file_digest(tmp, checksum.algorithm)
                if not checksum.matches(actual):
                    attempts.append(Attempt(
                        url, f"checksum mismatch: {checksum.algorithm.upper()} {actual}, expected {checksum.hexdigest} "
                        "(the file was not kept)", bad_checksum=True,
                    ))
                    continue
                tmp.replace(dest)
                return dest
            except urllib.error.HTTPError as exc:
                attempts.append(Attempt(url, f"HTTP {exc.code} {exc.reason}"))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                attempts.append(Attempt(url, f"{type(exc).__name__}: {reason}", unreachable=_unreachable(exc)))
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        if not dest.is_file():
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
    raise DownloadError(what, dest, attempts)


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders it created, deepest first."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


# -- benchbed download NAME... -------------------------------------------------------------------------


_KINDS = ("dataset", "metric")


def _resolve(name: str, registry: Registry) -> list[tuple[str, Downloadable]]:
    found: list[tuple[str, Downloadable]] = []
    for kind in _KINDS:
        if name not in registry.names(kind):
            continue
        spec = registry.get(kind, name).spec
        component = spec.factory()
        if not isinstance(component, Downloadable):
            raise DataError(f"{kind} {name!r} has nothing to download (it needs no files fetched from the network)")
        found.append((f"{kind} {name!r}", component))
    if not found:
        known = sorted({n for kind in _KINDS for n in registry.names(kind)})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise SuiteError(f"unknown data set or metric {name!r}{hint} (registered: {', '.join(known) or 'none'})")
    return found


def download(
    names: Sequence[str], *, root: str | os.PathLike[str] | None = None, registry: Registry | None = None
) -> list[Path]:
    """Fetch the files of registered data sets and metrics (``benchbed download NAME...``).

    Every name is resolved first (an unknown name, or a component with nothing to download, is an
    error before anything is fetched); then each component's ``download(root)`` runs in turn.

    Args:
        names: data set or metric names, e.g. ``["mnist", "fid"]``.
        root: the data root for data sets (default: each component's own default, i.e.
            ``$BENCHBED_DATA`` or ``~/.cache/benchbed/data``); weights go where their metric keeps them.
        registry: defaults to all installed plugins.

    Returns:
        The paths of every file the components hold now (fetched or already there), in order.

    Raises:
        SuiteError: an unknown name.
        DataError: nothing to download, offline or no network, or a failed or corrupt download.
    """
    if registry is None:
        from benchbed.plugins import load_registry

        registry = load_registry()
    plan = [item for name in dict.fromkeys(names) for item in _resolve(name, registry)]
    where = None if root is None else os.fspath(root)
    paths: list[Path] = []
    for _, component in plan:
        paths.extend(component.download(where))
    return paths
