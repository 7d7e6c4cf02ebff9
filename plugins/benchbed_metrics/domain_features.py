"""FD-domain's feature extractor: trained by benchbed on a data set's training split, seeded, cached on disk.

The cache key is a hash of the training split's content, the architecture and the training settings,
so every cell on the same data split reuses one extractor, and any change retrains it.
Files live under ``$BENCHBED_DATA/fd_domain/`` or ``~/.cache/benchbed/fd_domain/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from benchbed.contracts import DatasetInfo, Split
from benchbed_metrics._batching import map_batches
from benchbed_metrics.domain_net import DomainAutoencoder, DomainClassifier
from benchbed_metrics.weights import cache_dir, sha256_file

_VERSION = 1  # bump when the networks or the training loop change: invalidates the cache


@dataclass(frozen=True)
class ExtractorConfig:
    """How the extractor is trained.  ``kind`` is "classifier" (labels) or "autoencoder" (no labels)."""

    kind: str
    width: int = 16
    feature_dim: int = 64
    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


@dataclass
class DomainExtractor:
    """A trained extractor: ``features(x [N, C, H, W]) -> [N, feature_dim]`` plus its provenance."""

    net: nn.Module
    config: ExtractorConfig
    path: Path
    sha256: str
    train_hash: str
    test_accuracy: float | None

    def features(self, x: torch.Tensor, *, batch_size: int = 500, device: torch.device | None = None) -> torch.Tensor:
        dev = device or torch.device("cpu")
        self.net.to(dev)
        return map_batches(self.net.features, x.float(), batch_size=batch_size, device=dev)  # type: ignore[arg-type]


def _build(info: DatasetInfo, cfg: ExtractorConfig) -> nn.Module:
    if cfg.kind == "classifier":
        return DomainClassifier(info.shape, info.n_classes, width=cfg.width, feature_dim=cfg.feature_dim)
    if cfg.kind == "autoencoder":
        return DomainAutoencoder(info.shape, width=cfg.width, feature_dim=cfg.feature_dim)
    raise ValueError(f"FD-domain extractor kind must be 'classifier' or 'autoencoder', got {cfg.kind!r}")


def _train(net: nn.Module, train: Split, cfg: ExtractorConfig, device: torch.device) -> None:
    """Adam on minibatches drawn with a seeded generator (the global RNG is left untouched).

    Metrics run under ``no_grad`` (or inference mode), so gradients are switched back on here.
    """
    with torch.inference_mode(False), torch.enable_grad():
        _train_loop(net, train, cfg, device)


def _train_loop(net: nn.Module, train: Split, cfg: ExtractorConfig, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    net.to(device).train()
    n = len(train)
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
        x = train.x[idx].to(device)
        y = None if train.y is None else train.y[idx].to(device)
        loss = net.loss(x, y)  # type: ignore[operator]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()


@torch.no_grad()
def _accuracy(net: nn.Module, split: Split, device: torch.device) -> float | None:
    if not isinstance(net, DomainClassifier) or split.y is None:
        return None
    logits = map_batches(lambda b: net.head(net.body(b)), split.x, batch_size=500, device=device)
    return float((logits.argmax(dim=1) == split.y).float().mean())


def cache_key(info: DatasetInfo, train: Split, cfg: ExtractorConfig) -> str:
    """Hash of the training content, the data shape and the training settings."""
    blob = json.dumps({"v": _VERSION, "train": train.content_hash(), "shape": info.shape,
                       "classes": info.n_classes, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_or_train(
    info: DatasetInfo, train: Split, test: Split, cfg: ExtractorConfig, *, device: torch.device
) -> DomainExtractor:
    """The cached extractor for (train split, cfg), training and saving it first if needed."""
    path = cache_dir("fd_domain") / f"{info.name}_{cache_key(info, train, cfg)}.pt"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # seeded initialisation, global RNG restored afterwards
        net = _build(info, cfg)
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["net"])
        acc = state["test_accuracy"]
        acc = None if acc < 0 else float(acc)
        net.eval()
    else:
        _train(net, train, cfg, device)
        acc = _accuracy(net, test, device)
        tmp = path.with_suffix(".tmp")
        state_dict = {k: v.cpu() for k, v in net.state_dict().items()}
        torch.save({"net": state_dict, "test_accuracy": -1.0 if acc is None else acc}, tmp)
        tmp.replace(path)  # atomic, so parallel cells never read a partial file
    return DomainExtractor(net=net, config=cfg, path=path, sha256=sha256_file(path),
                           train_hash=train.content_hash(), test_accuracy=acc)
