"""Where pre-trained weights come from: ``$BENCHBED_FID_WEIGHTS``, else the torch hub cache, where they
are downloaded on first use (SHA-256 checked) unless ``$BENCHBED_OFFLINE`` is set.

Also the cache directory benchbed writes its own trained feature extractors to, and file hashing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from benchbed.downloads import Checksum, DownloadError, fetch
from benchbed.errors import DataError, NotApplicable

FID_WEIGHTS_ENV = "BENCHBED_FID_WEIGHTS"
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's FID_WEIGHTS_URL file name
# pytorch_fid.inception.FID_WEIGHTS_URL; more mirrors may follow it (tried in turn).
FID_WEIGHTS_URLS = (f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILE}",)
# The hash prefix in the file name, as torch.hub's HASH_REGEX reads it: the first hex digits of the SHA-256.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
DATA_ROOT_ENV = "BENCHBED_DATA"

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def hub_weights_path() -> Path:
    """``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth`` (where torch.hub puts it)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def _local_weights() -> Path | None:
    """``$BENCHBED_FID_WEIGHTS`` (must exist when set), else the hub file when present, else ``None``.

    Raises:
        NotApplicable: ``$BENCHBED_FID_WEIGHTS`` names no file.
    """
    env = os.environ.get(FID_WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise NotApplicable(f"FID weights: ${FID_WEIGHTS_ENV} points at {str(path)!r}, which is not a file")
        return path
    hub = hub_weights_path()
    return hub if hub.is_file() else None


def download_fid_weights() -> Path:
    """The weights file, downloaded into the torch hub cache when missing (``benchbed download fid``).

    Raises:
        DataError: ``$BENCHBED_FID_WEIGHTS`` names no file; offline, no network, or a failed or
            corrupt download (naming the file, the URLs and the checksums).
    """
    try:
        local = _local_weights()
    except NotApplicable as exc:
        raise DataError(str(exc)) from exc
    return local if local is not None else _fetch_weights()


def _fetch_weights() -> Path:
    return fetch(FID_WEIGHTS_URLS, hub_weights_path(), Checksum("sha256", FID_WEIGHTS_SHA256_PREFIX),
                 what="metric 'fid' (pytorch-fid Inception weights)")


def fid_weights_path() -> Path:
    """The pytorch-fid Inception weights on this machine, downloaded on first use.

    Order: ``$BENCHBED_FID_WEIGHTS`` (must exist when set), then
    ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth``, downloaded there from
    pytorch-fid's release (SHA-256 prefix checked, as torch.hub's ``check_hash``) when missing.

    Raises:
        NotApplicable: no weights file and none could be downloaded: the message says how to provide one.
    """
    local = _local_weights()
    if local is not None:
        return local
    try:
        return _fetch_weights()
    except DownloadError as exc:
        # The reason is published in tables: it names the file, the URLs and the variables, never this
        # machine's paths.
        raise NotApplicable(
            f"FID needs pytorch-fid's Inception weights ({FID_WEIGHTS_FILE}, from pytorch-fid's GitHub "
            f"releases) and none could be fetched ({exc.summary()}): run `benchbed download fid` where a "
            f"network is available, set ${FID_WEIGHTS_ENV} to the file, or copy it into the checkpoints "
            "folder of the torch hub cache. FD-domain ('fd_domain') gives a distribution distance without "
            "external weights."
        ) from exc


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file (cached by path, size and modification time)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def cache_dir(*parts: str) -> Path:
    """``$BENCHBED_DATA/<parts>`` or ``~/.cache/benchbed/<parts>``, created on demand."""
    root = os.environ.get(DATA_ROOT_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "benchbed"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
