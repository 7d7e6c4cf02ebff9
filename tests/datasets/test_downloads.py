"""Downloads on first use and ``benchbed download``, against a local HTTP server on 127.0.0.1.

The server (``http.server`` in a thread) serves tiny files in the real formats (gzipped IDX, a CIFAR-10
python-batches tarball, SVHN ``.mat``, a stand-in weights file); the mirror lists and checksums are
patched to point at it and to the tiny files' real digests.  Nothing here leaves this machine.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchbed import downloads
from benchbed.contracts import Downloadable
from benchbed.downloads import Checksum, DownloadError, fetch
from benchbed.errors import DataError, NotApplicable, SuiteError
from benchbed.testing import load_dataset
from benchbed_datasets import cifar, svhn
from benchbed_datasets.files import md5sum
from benchbed_datasets.idx import MNIST, FashionMNIST
from benchbed_metrics import weights

IDX_GZ = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
          "t10k-labels-idx1-ubyte.gz")


class Server:
    """Serves ``folder`` on 127.0.0.1; records every requested path.  ``/truncated/<file>`` announces
    more bytes than it sends (a transfer broken off)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path.startswith("/truncated/"):
                    body = (server.folder / self.path.removeprefix("/truncated/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 1000))
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A running server over ``tmp_path/srv``, with downloads allowed (the suite runs offline)."""
    monkeypatch.delenv("BENCHBED_OFFLINE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # never route the local server through a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    (tmp_path / "srv").mkdir()
    srv = Server(tmp_path / "srv")
    yield srv
    srv.close()


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _serve_mnist(writers, server: Server, monkeypatch: pytest.MonkeyPatch, cls: type[MNIST] = MNIST) -> dict:
    """Tiny gzipped IDX files at ``<server>/mnist/``; the class's mirrors: a 404 one, then the server."""
    arrays = writers.idx(server.folder / "mnist", gz=True, n_train=40, n_test=20)
    monkeypatch.setattr(cls, "mirrors", (server.url + "gone/", server.url + "mnist/"))
    monkeypatch.setattr(cls, "md5s", {n: md5sum(server.folder / "mnist" / n) for n in IDX_GZ})
    return arrays


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- data sets --------------------------------------------------------------------------------------------


def test_mnist_download_falls_through_404_then_loads(writers, server: Server, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = _serve_mnist(writers, server, monkeypatch)
    root = tmp_path / "root"
    paths = downloads.download(["mnist"], root=str(root))
    assert paths == [root / "mnist" / n for n in IDX_GZ]
    # Every file: the 404 mirror first, then the server's copy.
    assert server.requests == [p for n in IDX_GZ for p in (f"/gone/{n}", f"/mnist/{n}")]
    assert _files_under(root) == sorted(f"mnist/{n}" for n in IDX_GZ)  # no temporary files left
    # Loaded through the plugin interface, checksums verified (verify=True is the default).
    bundle = load_dataset("mnist", root=str(root), n_val=10)
    assert len(bundle.train) == 30 and len(bundle.test) == 20
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float().unsqueeze(1) / 255
    assert torch.equal(bundle.test.x, expected)
    # A second download finds everything in place and asks the server nothing.
    server.requests.clear()
    assert downloads.download(["mnist"], root=str(root)) == paths and server.requests == []
    # A file in place that was damaged since is reported, not listed as fine.
    damaged = root / "mnist" / IDX_GZ[0]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    with pytest.raises(DataError, match=rf"checksum mismatch for {re.escape(str(damaged))}"):
        downloads.download(["mnist"], root=str(root))


def test_loader_downloads_on_first_use_with_plain_progress_lines(writers, server: Server, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _serve_mnist(writers, server, monkeypatch, FashionMNIST)
    monkeypatch.setenv("BENCHBED_DATA", str(tmp_path / "data"))
    bundle = load_dataset("fashion_mnist", n_val=10)  # download="auto" is the default
    assert len(bundle.test) == 20
    assert _files_under(tmp_path / "data") == sorted(f"fashion_mnist/{n}" for n in IDX_GZ)
    err = capsys.readouterr().err  # not a TTY: plain lines, no bar
    assert "[benchbed] data set 'fashion_mnist' t10k-images-idx3-ubyte.gz: downloading (" in err
    assert f"received 15.4 KiB from {server.url}mnist/t10k-images-idx3-ubyte.gz" in err
    assert "\r" not in err


def test_cifar10_tarball_download_unpacks_and_loads(writers, server: Server, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    batches = writers.cifar(tmp_path / "src" / "cifar-10-batches-py", per_batch=10)
    archive = server.folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cifar, "_URLS", (server.url + "cifar-10-python.tar.gz",))
    monkeypatch.setattr(cifar, "_TGZ_MD5", md5sum(archive))
    monkeypatch.setattr(cifar, "_MD5S", {n: md5sum(tmp_path / "src" / "cifar-10-batches-py" / n) for n in batches})
    root = tmp_path / "root"
    paths = downloads.download(["cifar10"], root=str(root))
    assert [p.name for p in paths] == [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    assert all(p.parent == root / "cifar10" / "cifar-10-batches-py" for p in paths)
    assert not [p for p in (root / "cifar10").iterdir() if p.name.startswith(".")]  # staging folder gone
    bundle = load_dataset("cifar10", root=str(root), n_val=10)
    assert bundle.test.y.tolist() == batches["test_batch"][1].tolist()


def test_svhn_mat_download_and_load(writers, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = writers.svhn(server.folder / "svhn", n_train=30, n_test=20)
    monkeypatch.setattr(svhn, "_MIRRORS", (server.url + "svhn/",))
    monkeypatch.setattr(svhn, "_MD5S", {n: md5sum(server.folder / "svhn" / n) for n in files})
    root = tmp_path / "root"
    bundle = load_dataset("svhn", root=str(root), n_val=10)
    assert bundle.test.y.tolist() == [int(v) % 10 for v in files["test_32x32.mat"][1][:, 0]]
    assert _files_under(root) == ["svhn/test_32x32.mat", "svhn/train_32x32.mat"]


def test_corrupt_download_is_rejected_and_nothing_kept(writers, server: Server, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_mnist(writers, server, monkeypatch)
    good = MNIST.md5s["train-images-idx3-ubyte.gz"]
    victim = server.folder / "mnist" / "train-images-idx3-ubyte.gz"
    victim.write_bytes(b"\x1f\x8b wrong bytes under the right name")
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=str(root), n_val=10)
    assert isinstance(info.value, DownloadError) and info.value.bad_checksum
    text = str(info.value)
    assert text.startswith("data set 'mnist': download failed for train-images-idx3-ubyte.gz: ")
    served = f"{server.url}mnist/train-images-idx3-ubyte.gz"
    assert f"{served}: checksum mismatch: MD5 {md5sum(victim)}, expected {good}" in text
    assert f"{server.url}gone/train-images-idx3-ubyte.gz: HTTP 404" in text
    assert str(root / "mnist" / "train-images-idx3-ubyte.gz") in text
    assert not root.exists(), _files_under(root)  # not the file, no temporary file, not even the folders


def test_broken_off_transfer_is_not_kept(writers, server: Server, tmp_path: Path) -> None:
    writers.svhn(server.folder, n_train=10, n_test=10)
    dest = tmp_path / "out" / "test_32x32.mat"
    with pytest.raises(DownloadError, match=r"truncated/test_32x32\.mat: IncompleteRead") as info:
        md5 = Checksum("md5", md5sum(server.folder / "test_32x32.mat"))
        fetch([server.url + "truncated/test_32x32.mat"], dest, md5, what="test")
    assert not info.value.unreachable
    assert not (tmp_path / "out").exists()


def test_every_mirror_404_is_an_error_naming_each_url(server: Server, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svhn, "_MIRRORS", (server.url + "a/", server.url + "b/"))
    with pytest.raises(DownloadError) as info:
        load_dataset("svhn", root=str(tmp_path / "root"))
    assert f"{server.url}a/train_32x32.mat: HTTP 404" in str(info.value)
    assert f"{server.url}b/train_32x32.mat: HTTP 404" in str(info.value)
    assert not info.value.unreachable and server.requests == ["/a/train_32x32.mat", "/b/train_32x32.mat"]


def test_offline_never_touches_the_network(writers, server: Server, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_mnist(writers, server, monkeypatch)
    monkeypatch.setenv("BENCHBED_OFFLINE", "1")
    root = tmp_path / "root"
    for attempt in (lambda: load_dataset("mnist", root=str(root)),
                    lambda: load_dataset("mnist", root=str(root), download=True),
                    lambda: downloads.download(["mnist"], root=str(root))):
        with pytest.raises(DataError) as info:
            attempt()
        text = str(info.value)
        assert "data set 'mnist': files not found. Put these files here:" in text
        assert str(root / "mnist" / "t10k-labels-idx1-ubyte.gz") in text
        assert "$BENCHBED_OFFLINE is set, so train-images-idx3-ubyte.gz was not downloaded" in text
    assert server.requests == [] and not root.exists()


def test_download_false_never_downloads(writers, server: Server, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_mnist(writers, server, monkeypatch)
    with pytest.raises(DataError, match="files not found"):
        load_dataset("mnist", root=str(tmp_path / "root"), download=False)
    assert server.requests == []


def test_no_network_gives_the_put_files_here_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCHBED_OFFLINE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    dead = f"http://127.0.0.1:{_closed_port()}/"
    monkeypatch.setattr(svhn, "_MIRRORS", (dead,))
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        load_dataset("svhn", root=str(root))
    text = str(info.value)
    assert "data set 'svhn': files not found. Put these files here:" in text and str(root / "svhn") in text
    assert f"no mirror could be reached (no network?) for train_32x32.mat: {dead}train_32x32.mat: URLError" in text
    assert not root.exists()


# --- benchbed download: names, nothing to download, the CLI --------------------------------------------------


def test_names_are_checked_before_anything_is_fetched(writers, server: Server, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_mnist(writers, server, monkeypatch)
    with pytest.raises(DataError, match="dataset 'gmm8' has nothing to download"):
        downloads.download(["mnist", "gmm8"], root=str(tmp_path))
    with pytest.raises(SuiteError, match=r"unknown data set or metric 'mnsit'; did you mean 'mnist'"):
        downloads.download(["mnist", "mnsit"], root=str(tmp_path))
    with pytest.raises(DataError, match="metric 'mmd' has nothing to download"):
        downloads.download(["mmd"], root=str(tmp_path))
    assert server.requests == []


def test_file_sources_and_fid_are_downloadable() -> None:
    from benchbed_datasets.digits import Digits
    from benchbed_metrics.fid import FID

    assert isinstance(MNIST(), Downloadable) and isinstance(svhn.SVHN(), Downloadable)
    assert isinstance(FID(), Downloadable) and not isinstance(Digits(), Downloadable)


def test_cli_download(writers, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from benchbed import cli

    _serve_mnist(writers, server, monkeypatch)
    root = tmp_path / "root"
    assert cli.main(["download", "mnist", "--root", str(root)]) == 0
    assert _files_under(root) == sorted(f"mnist/{n}" for n in IDX_GZ)


# --- FID weights ------------------------------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("BENCHBED_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints" / weights.FID_WEIGHTS_FILE


def _serve_weights(server: Server, monkeypatch: pytest.MonkeyPatch, blob: bytes) -> str:
    (server.folder / weights.FID_WEIGHTS_FILE).write_bytes(blob)
    monkeypatch.setattr(weights, "FID_WEIGHTS_URLS", (server.url + "gone/x.pth", server.url + weights.FID_WEIGHTS_FILE))
    return hashlib.sha256(blob).hexdigest()


def test_fid_weights_downloaded_on_first_use_sha256_prefix(server: Server, hub: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    blob = b"stand-in weights " * 100
    digest = _serve_weights(server, monkeypatch, blob)
    monkeypatch.setattr(weights, "FID_WEIGHTS_SHA256_PREFIX", digest[:8])  # a prefix, as in the real file name
    assert weights.fid_weights_path() == hub and hub.read_bytes() == blob
    assert server.requests == ["/gone/x.pth", f"/{weights.FID_WEIGHTS_FILE}"]
    server.requests.clear()
    assert downloads.download(["fid"], root="/ignored") == [hub] and server.requests == []


def test_fid_corrupt_weights_rejected(server: Server, hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = _serve_weights(server, monkeypatch, b"the real weights")
    monkeypatch.setattr(weights, "FID_WEIGHTS_SHA256_PREFIX", digest[:8])
    (server.folder / weights.FID_WEIGHTS_FILE).write_bytes(b"tampered")
    bad = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(DataError, match=f"checksum mismatch: SHA256 {bad}, expected {digest[:8]}"):
        downloads.download(["fid"])
    with pytest.raises(NotApplicable) as info:
        weights.fid_weights_path()
    text = str(info.value)
    assert f"{server.url}{weights.FID_WEIGHTS_FILE}: checksum mismatch: SHA256 {bad}" in text
    assert str(hub.parent.parent) not in text, "the published reason must not hold this machine's paths"
    assert not hub.parent.exists()


def test_fid_offline_is_na_with_instructions(server: Server, hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _serve_weights(server, monkeypatch, b"w")
    monkeypatch.setenv("BENCHBED_OFFLINE", "1")
    with pytest.raises(NotApplicable) as info:
        weights.fid_weights_path()
    text = str(info.value)
    assert "$BENCHBED_OFFLINE is set" in text and "benchbed download fid" in text and "BENCHBED_FID_WEIGHTS" in text
    assert server.requests == [] and not hub.parent.exists()


def test_published_fid_weights_url_and_hash_prefix() -> None:
    """The URL is pytorch-fid's, and the prefix is the one torch.hub's check_hash reads from its file name."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    assert weights.FID_WEIGHTS_URLS[0] == FID_WEIGHTS_URL
    match = torch.hub.HASH_REGEX.search(weights.FID_WEIGHTS_FILE)
    assert match is not None and match.group(1) == weights.FID_WEIGHTS_SHA256_PREFIX


# --- pieces ---------------------------------------------------------------------------------------------------


def test_checksum_prefix_and_validation() -> None:
    full = hashlib.sha256(b"x").hexdigest()
    assert Checksum("sha256", full[:8].upper()).matches(full) and Checksum("sha256", full).matches(full)
    assert not Checksum("sha256", "00000000").matches(full)
    with pytest.raises(ValueError, match="at least 8 hex digits"):
        Checksum("md5", "abc")


def test_progress_bar_on_a_tty(server: Server, tmp_path: Path) -> None:
    (server.folder / "blob").write_bytes(b"y" * 300_000)
    stream = io.StringIO()
    fetch([server.url + "blob"], tmp_path / "blob", Checksum("md5", md5sum(server.folder / "blob")), what="test",
          bars=True, stream=stream)
    out = stream.getvalue()  # a transient tqdm bar in bytes, then one line that stays
    assert re.search(r"\rtest blob: +0%\|.*/293k \[", out), out
    assert out.endswith(f"\r[benchbed] test blob: received 293.0 KiB from {server.url}blob\n")
