"""Every data-set load is checked against the data-set contract (``DataBundle.problems``), so a plugin
data set with NaNs, a misspelt ``kind``, wrong shapes or labels is reported by name before anything
trains on it: by ``Registry.load_dataset``, ``benchbed validate`` and ``benchbed run``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchbed import DatasetSpec, cli, hookimpl
from benchbed.contracts import DataBundle, DatasetInfo, Split
from benchbed.errors import DataContractError
from benchbed.plugins import load_plugins

FAULTS = {
    "none": None,
    "kind": r"info.kind 'vectors' is not one of 'image', 'vector'",
    "nan": r"train.x holds 1 non-finite values \(NaN or inf\)",
    "shape": r"train.x has shape \(16, 1\), not \[N, \*info.shape\] = \[N, 2\]",
    "dtype": r"train.x has dtype torch.float64, not torch.float32",
    "labels": r"train.y has labels in \[0, 5\], outside 0..1",
    "empty": r"the val split is empty",
    "type": r"load\(seed\) returned a dict, not a benchbed.contracts.DataBundle",
}


class BrokenData:
    """Sixteen 2-D points with two classes, broken as ``fault`` says."""

    def __init__(self, *, fault: str = "none") -> None:
        self.fault = fault

    def load(self, *, seed: int) -> DataBundle | dict:
        g = torch.Generator().manual_seed(seed)
        x, y = torch.rand(16, 2, generator=g), torch.arange(16) % 2
        kind = "vectors" if self.fault == "kind" else "vector"
        if self.fault == "nan":
            x[3, 1] = math.nan
        if self.fault == "shape":
            x = x[:, :1]
        if self.fault == "dtype":
            x = x.double()
        if self.fault == "labels":
            y[0] = 5
        if self.fault == "type":
            return {"x": x}
        train = Split(x, y)
        val = Split(x[:0], y[:0]) if self.fault == "empty" else Split(x.clone(), y.clone())
        return DataBundle(DatasetInfo("broken", (2,), kind, n_classes=2), train, val, Split(x.clone(), y.clone()))


class BrokenPlugin:
    @hookimpl
    def benchbed_register_datasets(self, register):  # noqa: ANN001, ANN201
        register(DatasetSpec(name="broken", factory=BrokenData, description="a data set with a fault"))


def plugin_set(helpers):  # noqa: ANN001, ANN201
    return load_plugins(extra=[("fake", helpers.FakePlugin()), ("broken_data", BrokenPlugin())],
                        entry_points_enabled=False, strict=True)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_load_checks_the_data_contract(helpers, fault: str) -> None:
    registry = plugin_set(helpers).registry
    if FAULTS[fault] is None:
        assert len(registry.load_dataset("broken", {"fault": fault}, seed=0).train) == 16
        return
    pattern = r"data set 'broken' \(plugin 'broken_data'.*breaks the data-set contract: " + FAULTS[fault]
    with pytest.raises(DataContractError, match=pattern):
        registry.load_dataset("broken", {"fault": fault}, seed=0)


def _suite(tmp_path: Path, helpers, fault: str) -> Path:  # noqa: ANN001
    suite = tmp_path / "suite.toml"
    header = helpers.HEADER.replace("[datasets.toy]", f"[datasets.broken]\nfault = '{fault}'")
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n", header))
    return suite


def test_validate_names_the_broken_data_set(tmp_path: Path, helpers, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "load_plugins", lambda **kw: plugin_set(helpers))
    assert cli.main(["validate", str(_suite(tmp_path, helpers, "none"))]) == 0
    capsys.readouterr()
    assert cli.main(["validate", str(_suite(tmp_path, helpers, "nan"))]) != 0
    err = capsys.readouterr().err
    assert "[datasets.broken] cannot be loaded: data set 'broken' (plugin 'broken_data'" in err
    assert "train.x holds 1 non-finite values" in err and "Traceback" not in err


def test_run_trains_nothing_on_a_broken_data_set(tmp_path: Path, helpers, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "load_plugins", lambda **kw: plugin_set(helpers))
    trained: list[int] = []
    monkeypatch.setattr(helpers.LinearAE, "train_step",
                        lambda self, batch, step: trained.append(step) or {"loss": 0.0})
    store = tmp_path / "s.sqlite"
    code = cli.main(["run", str(_suite(tmp_path, helpers, "kind")), "--store", str(store), "--no-tables",
                     "--no-bars"])
    out, err = capsys.readouterr()
    assert code == 3 and trained == []
    assert "info.kind 'vectors' is not one of 'image', 'vector'" in out + err
