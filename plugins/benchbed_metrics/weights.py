"""Where pre-trained weights come from: the torch hub cache or an environment variable, never the network.

Also the cache directory benchbed writes its own trained feature extractors to, and file hashing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from benchbed.errors import NotApplicable

FID_WEIGHTS_ENV = "BENCHBED_FID_WEIGHTS"
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's FID_WEIGHTS_URL file name
DATA_ROOT_ENV = "BENCHBED_DATA"

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def fid_weights_path() -> Path:
    """The pytorch-fid Inception weights on this machine.

    Order: ``$BENCHBED_FID_WEIGHTS`` (must exist when set), then
    ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth``.

    Raises:
        NotApplicable: no weights file: the message says how to provide one.
    """
    import torch

    env = os.environ.get(FID_WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise NotApplicable(f"FID weights: ${FID_WEIGHTS_ENV} points at {str(path)!r}, which is not a file")
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE
    if hub.is_file():
        return hub
    # The reason is published in tables: it names the file and the variable, never this machine's paths.
    raise NotApplicable(
        f"FID needs pytorch-fid's Inception weights ({FID_WEIGHTS_FILE}, from pytorch-fid's GitHub "
        f"releases), which benchbed never downloads: set ${FID_WEIGHTS_ENV} to the file, or copy it into "
        "the checkpoints folder of the torch hub cache. FD-domain ('fd_domain') gives a distribution "
        "distance without external weights."
    )


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
