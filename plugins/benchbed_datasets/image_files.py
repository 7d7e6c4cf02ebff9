"""Base class of the file-backed image data sets (MNIST, Fashion-MNIST, CIFAR-10, SVHN).

Flow of ``load(seed)``: find the files under the data root (or download them when missing), verify
their official checksums (unless ``verify=False``), read them as uint8 ``[N, C, H, W]`` arrays,
carve a stratified validation split from the official training split (deterministic given the seed),
optionally keep stratified subsets for small machines, and only then convert to float32 in [0, 1]
(converting the kept rows only keeps memory low: all of SVHN as float32 would be ~0.9 GB).

The official test split is kept as it is; ``n_test`` takes a stratified subset of it chosen with a
fixed seed (0), so every seed of a suite is scored on the same test images.

Downloads (:class:`benchbed.contracts.Downloadable`): ``download(root)`` fetches what is missing, as
``benchbed download NAME`` does; ``load`` does the same on first use unless built with
``download=False`` or ``$BENCHBED_OFFLINE`` is set.  Offline or without a network, the error names
each file and where to put it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import torch
from annotated_types import Gt

from benchbed.contracts import DataBundle, DatasetInfo, Split
from benchbed.downloads import DownloadError
from benchbed.errors import DataError
from benchbed_datasets._base import ParameterError, check_int
from benchbed_datasets.files import data_root, find_folder, missing_files_error, verify_md5
from benchbed_datasets.splits import carve, stratified_pick, take

RawSplits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""``(train_x uint8 [N, C, H, W], train_y int64 [N], test_x, test_y)``."""


class FileImageSource(ABC):
    """A labelled image data set read from its official files.

    Args:
        root: data root (default: ``$BENCHBED_DATA``, else ``~/.cache/benchbed/data``).
        n_val: validation examples carved (stratified, from the seed) out of the official train split.
        n_train: keep only this many (stratified) training examples; ``None`` keeps all the rest.
        n_test: keep only this many (stratified, fixed seed) test examples; ``None`` keeps all.
        download: ``"auto"``: fetch missing files from the official mirrors on first use (MD5-checked)
            unless ``$BENCHBED_OFFLINE`` is set; ``False``: never (offline use); ``True``: as ``"auto"``.
        verify: check the official MD5 checksums (``False`` for home-made files, e.g. in tests).
    """

    name: str = ""
    shape: tuple[int, int, int] = (1, 28, 28)
    label_names: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()  # candidate folders under the root; the first is where files go
    required: tuple[tuple[str, ...], ...] = ()  # per file: accepted names (e.g. gzipped or not)
    files_note: str = ""  # said in the missing-files error (e.g. other accepted names)

    def __init__(
        self,
        *,
        root: str | None = None,
        n_val: Annotated[int, Gt(0)] = 5000,
        n_train: Annotated[int | None, Gt(0)] = None,
        n_test: Annotated[int | None, Gt(0)] = None,
        download: bool | Literal["auto"] = "auto",
        verify: bool = True,
    ) -> None:
        if root is not None and not isinstance(root, str):
            raise ParameterError(f"data set {self.name!r}: parameter 'root' must be a path string, got {root!r}")
        self.root = root
        self.n_val = check_int(self.name, "n_val", n_val, minimum=1)
        self.n_train = None if n_train is None else check_int(self.name, "n_train", n_train, minimum=1)
        self.n_test = None if n_test is None else check_int(self.name, "n_test", n_test, minimum=1)
        if not isinstance(download, bool) and download != "auto":
            raise ParameterError(
                f"data set {self.name!r}: parameter 'download' must be true, false or 'auto', got {download!r}"
            )
        if not isinstance(verify, bool):
            raise ParameterError(f"data set {self.name!r}: parameter 'verify' must be true or false, got {verify!r}")
        # Not ``self.download``: that name is the Downloadable method.
        self.download_mode: bool | str = download
        self.verify = verify

    # -- what a subclass provides ----------------------------------------------------------------

    @abstractmethod
    def fetch(self, folder: Path) -> None:
        """Download the official files missing from ``folder`` (via :func:`files.fetch_official`).

        Raises:
            benchbed.downloads.DownloadError: offline, unreachable, or a failed or corrupt download.
        """

    @abstractmethod
    def read(self, folder: Path) -> RawSplits:
        """Verify (when ``self.verify``) and read the files in ``folder``."""

    def checksums(self) -> Mapping[str, str]:
        """The official MD5 of each file name this data set can check (``download`` checks the files
        already present against it)."""
        return {}

    # -- shared flow -------------------------------------------------------------------------------

    def locate(self) -> Path:
        """The folder holding the files; downloads the missing ones first unless ``download=False``.

        Raises:
            DataError: files missing (naming each file and where it must go), also when offline or
                without a network; or a download failed (naming the file, URLs and checksums).
        """
        root = data_root(self.root)
        folder = find_folder(root, self.folders, self.required)
        if folder is None and self.download_mode is not False:
            folder = self._fetch_into(root)
        if folder is None:
            raise self._missing(root)
        return folder

    def download(self, root: str | None = None) -> list[Path]:
        """Fetch the missing official files into the data root (``root``, else this loader's root).

        Returns:
            The paths of all the data set's files, already present or just fetched.

        Raises:
            DataError: offline or no network (naming each file and where to put it), a failed or
                corrupt download (naming the file, the URLs and the checksums), or (``verify``) a file
                already present whose checksum is not the official one.
        """
        base = data_root(root if root is not None else self.root)
        folder = find_folder(base, self.folders, self.required) or self._fetch_into(base)
        if folder is None:
            raise self._missing(base)
        paths = [next(folder / n for n in group if (folder / n).is_file()) for group in self.required]
        if self.verify:  # files found in place are checked too: "present" must not mean "fine"
            expected = self.checksums()
            for path in paths:
                if path.name in expected:
                    verify_md5(path, expected[path.name], self.name)
        return paths

    def _fetch_into(self, root: Path) -> Path | None:
        """Fetch into the first candidate folder; the folder found afterwards (``None``: still incomplete)."""
        try:
            self.fetch(root / self.folders[0])
        except DownloadError as exc:
            if not exc.unreachable:
                raise
            raise self._missing(root, f"\n{exc.summary()}") from exc
        return find_folder(root, self.folders, self.required)

    def _missing(self, root: Path, why: str = "") -> DataError:
        names = [group[0] for group in self.required]
        return missing_files_error(self.name, root / self.folders[0], names, self._alternatives(root) + why)

    def _alternatives(self, root: Path) -> str:
        notes = [self.files_note] if self.files_note else []
        notes += [f"torchvision's layout {root / other} is also accepted" for other in self.folders[1:]]
        return ("\n" + "; ".join(notes)) if notes else ""

    def load(self, *, seed: int) -> DataBundle:
        """Read, verify and split the data (see the module docstring)."""
        train_x, train_y, test_x, test_y = self.read(self.locate())
        if self.n_val >= len(train_x):
            raise ParameterError(
                f"data set {self.name!r}: n_val={self.n_val} leaves no training examples "
                f"(the training file has {len(train_x)})"
            )
        train, val = carve(train_x, train_y, self.n_val, seed=seed, n_keep=self.n_train)
        test = Split(test_x, test_y)
        if self.n_test is not None and self.n_test < len(test_x):
            keep, _ = stratified_pick(test_y.numpy(), self.n_test, seed=0, stream=9)
            test = take(test_x, test_y, keep)
        info = DatasetInfo(
            name=self.name, shape=self.shape, kind="image", n_classes=len(self.label_names),
            label_names=self.label_names,
        )
        return DataBundle(info=info, train=_to_float(train), val=_to_float(val), test=_to_float(test))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _to_float(split: Split) -> Split:
    """uint8 pixels -> float32 in [0, 1]."""
    return Split(split.x.to(torch.float32).div_(255.0), split.y)
