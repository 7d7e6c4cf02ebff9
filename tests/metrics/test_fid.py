"""The real FID code path with a randomly initialised Inception state dict (values meaningless, path real)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from benchbed.errors import NotApplicable
from benchbed.testing import evaluate_metric, load_dataset
from benchbed_metrics.inception import FIDInceptionFeatures, fid_inception_state_dict_template


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytorch-fid-shaped weights file with random values, saved like the real one."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / "pt_inception-random.pth"
    torch.save(fid_inception_state_dict_template(), path)
    return path


def test_features_match_pytorch_fid_inception(random_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our no-download assembly equals pytorch-fid's own InceptionV3 given the same weights."""
    from pytorch_fid import inception as pfi

    state = torch.load(random_weights, weights_only=True)
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)  # reference only, in the test
    reference = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048], 0]).eval()
    ours = FIDInceptionFeatures(random_weights)
    ours64 = FIDInceptionFeatures(random_weights, dims=64)
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        ref_block0, ref_pool3 = reference(x)
        assert torch.allclose(ours(x), ref_pool3.flatten(1), rtol=1e-4, atol=1e-5)
        ref64 = torch.nn.functional.adaptive_avg_pool2d(ref_block0, (1, 1)).flatten(1)  # as pytorch-fid pools
        assert torch.allclose(ours64(x), ref64, rtol=1e-4, atol=1e-5)
        grey = torch.rand(2, 1, 8, 8)  # grey images are repeated to 3 channels
        assert torch.allclose(ours64(grey), ours64(grey.repeat(1, 3, 1, 1)))


class _Sampler:
    capabilities = frozenset({"sample"})

    def __init__(self, pool: torch.Tensor | None) -> None:
        self.pool = pool

    def sample(self, n: int) -> torch.Tensor:
        if self.pool is None:
            return torch.rand(n, 1, 8, 8)
        return self.pool[torch.randint(0, self.pool.shape[0], (n,))]


@pytest.mark.slow
def test_fid_end_to_end_with_local_weights(random_weights: Path, monkeypatch: pytest.MonkeyPatch, make_ctx) -> None:
    monkeypatch.setenv("BENCHBED_FID_WEIGHTS", str(random_weights))
    bundle = load_dataset("digits", seed=0, n_val=100, n_test=100)
    settings = {"n_samples": 40, "n_reference": 40, "dims": 64}  # 299x299 Inception on CPU is slow
    noise = evaluate_metric("fid", make_ctx(_Sampler(None), bundle), **settings)
    data = evaluate_metric("fid", make_ctx(_Sampler(bundle.train.x), bundle), **settings)
    assert noise.settings["weights_sha256"] == hashlib.sha256(random_weights.read_bytes()).hexdigest()
    assert noise.settings["n_samples"] == 40 and noise.settings["n_reference"] == 40
    assert noise.settings["dims"] == 64
    # Even random conv features tell uniform noise from digits better than digits from digits.
    assert 0 <= data.value < noise.value


def test_missing_weights_give_na_with_instructions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_ctx) -> None:
    monkeypatch.delenv("BENCHBED_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("BENCHBED_OFFLINE", "1")  # offline, the weights are not downloaded on first use
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    bundle = load_dataset("digits", seed=0)
    with pytest.raises(NotApplicable, match="BENCHBED_FID_WEIGHTS") as info:
        evaluate_metric("fid", make_ctx(_Sampler(None), bundle))
    assert "pt_inception-2015-12-05-6726825d.pth" in str(info.value) and "benchbed download fid" in str(info.value)
    assert str(tmp_path) not in str(info.value), "the published reason must not hold this machine's paths"
    monkeypatch.setenv("BENCHBED_FID_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(NotApplicable, match="not a file"):
        evaluate_metric("fid", make_ctx(_Sampler(None), bundle))


def test_weights_found_in_torch_hub_cache(random_weights: Path, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    from benchbed_metrics.weights import FID_WEIGHTS_FILE, fid_weights_path

    monkeypatch.delenv("BENCHBED_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    target = tmp_path / "checkpoints" / FID_WEIGHTS_FILE
    target.write_bytes(random_weights.read_bytes())
    assert fid_weights_path() == target
