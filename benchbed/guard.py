"""Capability outputs checked where they are produced, while a cell is evaluated.

A model that breaks its contract's shapes (:mod:`benchbed.contracts`), e.g. ``sample(n)`` returning
[n, 1] for 2-D data, would otherwise be measured anyway: a metric may broadcast the wrong shape into a
plausible number, and a sample preview of the wrong shape cannot be drawn.  :func:`checked_outputs`
wraps the model's capability methods for the time of an evaluation, so that the first wrong output
raises :class:`ContractError` naming the model entry, the method and both shapes: the metric that
called it fails with that reason (and the preview is left out), whichever plugin the metric comes from.

Only shapes that every contract states are checked, so no correct model is refused and nothing is
recomputed: ``sample(n)`` -> [n, *D]; ``reconstruct(x)`` -> x's shape; ``log_likelihood(x)``,
``anomaly_score(x)`` and ``log_joint(x, z)`` -> [B]; ``infer(x)`` and ``classify(x)`` -> B rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from benchbed.errors import BenchbedError


class ContractError(BenchbedError):
    """A model's capability method returned what its contract rules out."""


def _expected(method: str, args: tuple[Any, ...], data_shape: tuple[int, ...]) -> tuple[int | None, ...] | None:
    """The shape ``method(*args)`` must return (``None`` entries: any size), or ``None`` when not checked."""
    first = args[0] if args else None
    if method == "sample" and isinstance(first, int):
        return (first, *data_shape)
    if not isinstance(first, torch.Tensor):
        return None
    batch = int(first.shape[0])
    if method == "reconstruct":
        return tuple(first.shape)
    if method in ("log_likelihood", "anomaly_score", "log_joint"):
        return (batch,)
    if method in ("infer", "classify"):
        return (batch, None)
    return None


def _fits(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    if len(expected) == 2 and expected[1] is None:  # rows only (latent codes, logits): any trailing dims
        return len(shape) >= 2 and shape[0] == expected[0]
    return shape == expected


def _wrap(fn: Callable[..., Any], method: str, who: str, data_shape: tuple[int, ...]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        expected = _expected(method, args, data_shape)
        if expected is None:
            return out
        if not isinstance(out, torch.Tensor):
            raise ContractError(f"{who}: {method}() returned {type(out).__name__}, not a tensor")
        if not _fits(tuple(out.shape), expected):
            want = tuple("*" if e is None else e for e in expected)
            raise ContractError(f"{who}: {method}() returned shape {tuple(out.shape)}, its contract says "
                                f"{want}" + (f" (data shape {data_shape})" if method == "sample" else ""))
        return out

    return checked


METHODS = ("sample", "reconstruct", "log_likelihood", "anomaly_score", "log_joint", "infer", "classify")


@contextmanager
def checked_outputs(model: Any, data_shape: tuple[int, ...], who: str) -> Iterator[None]:
    """While active, ``model``'s capability methods (:data:`METHODS`, those it has) check their outputs'
    shapes; ``who`` names the model in the error (e.g. ``"model 'vae' (component vae)"``).  The wrappers
    are instance attributes, removed on exit: the model's class, ``isinstance`` checks and its other
    attributes are untouched."""
    added: list[str] = []
    if not hasattr(model, "__dict__"):  # a model with __slots__ only cannot carry the wrappers: unchecked
        yield
        return
    try:
        for method in METHODS:
            fn = getattr(model, method, None)
            if callable(fn) and method not in vars(model):
                # object.__setattr__: an nn.Module would otherwise route the assignment through its own rules
                object.__setattr__(model, method, _wrap(fn, method, who, tuple(data_shape)))
                added.append(method)
        yield
    finally:
        for method in added:
            vars(model).pop(method, None)
