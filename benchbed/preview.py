"""Sample previews: a few model samples and data examples per run, kept for the HTML leaderboard.

A preview holds up to :data:`N_IMAGES` images (image data) or :data:`N_POINTS` points (vector data)
drawn from the trained model, next to as many test-split examples, as float16 arrays.  The runner
draws it after the metrics, with the cell's seed, so metric values do not depend on it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from benchbed.contracts import Capability, DataBundle, HasSample

N_IMAGES = 36
N_POINTS = 1000


@dataclass(frozen=True)
class Preview:
    """``samples`` [n, *shape] from the model and ``data`` [m, *shape] test examples (float16).

    ``kind`` is the data set's kind, ``"image"`` (shape (C, H, W)) or ``"vector"`` (shape (d,)).
    """

    kind: str
    samples: np.ndarray
    data: np.ndarray

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, kind=np.array(self.kind), samples=self.samples, data=self.data)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> Preview:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            return cls(kind=str(z["kind"]), samples=z["samples"], data=z["data"])


def make_preview(model: object, data: DataBundle) -> Preview | None:
    """Draw a preview from ``model`` (``None`` if it cannot sample).  Seed the RNGs before calling."""
    if Capability.SAMPLE not in frozenset(getattr(model, "capabilities", ())):
        return None
    assert isinstance(model, HasSample), f"{type(model).__name__} declares 'sample' without a sample method"
    n = N_IMAGES if data.info.kind == "image" else N_POINTS
    with torch.no_grad():
        samples = model.sample(n)
    return Preview(kind=data.info.kind, samples=_half(samples), data=_half(data.test.x[:n]))


def _half(x: torch.Tensor) -> np.ndarray:
    # float16 keeps 3 significant digits, plenty for a picture; non-finite values are clipped so that a
    # sample that blew up still shows (as saturated pixels or far points).
    finite = torch.nan_to_num(x.detach().float().cpu(), nan=0.0, posinf=6e4, neginf=-6e4)
    return finite.clamp(-6e4, 6e4).numpy().astype(np.float16)
