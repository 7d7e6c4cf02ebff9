"""A factory's keyword-only signature is its hyperparameter schema (scikit-learn's rule).

``schema(factory)`` reads the parameters; ``resolve(...)`` checks a suite's values against them:
unknown keys are rejected with the list of valid ones, and values of the wrong type are rejected
naming the key.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from benchbed.errors import SuiteError

_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One hyperparameter: name, default (``inspect.Parameter.empty`` when required) and annotation."""

    name: str
    default: Any
    annotation: Any

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def schema(factory: Callable[..., Any]) -> dict[str, Param]:
    """The keyword parameters of ``factory`` (a class or a function), in signature order.

    Positional-only parameters and ``*args``/``**kwargs`` are not part of a schema.
    """
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations just skip type checking
        hints = {}
    sig = inspect.signature(factory)
    out: dict[str, Param] = {}
    for p in sig.parameters.values():
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            out[p.name] = Param(p.name, p.default, hints.get(p.name, p.annotation))
    return out


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits an annotation (int is accepted where float is expected)."""
    if annotation in (_MISSING, Any, object):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return not args or all(_type_ok(v, args[0]) for v in value)
    if origin in (dict, typing.Mapping) or annotation is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any) -> Any:
    """TOML arrays become tuples where the schema says tuple; ints become floats for float params
    (also inside ``X | None`` and ``tuple[float, ...]``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and _type_ok(value, arg):
                return _coerce(value, arg)
        return value
    if (origin is tuple or annotation is tuple) and isinstance(value, list | tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return tuple(_coerce(v, args[0]) if args else v for v in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (typing.get_origin(annotation) is tuple or annotation is tuple) and isinstance(value, list):
        return tuple(value)
    return value


def resolve(
    factory: Callable[..., Any],
    values: Mapping[str, Any],
    *,
    what: str,
    where: Callable[[str], str] = lambda key: "",
) -> dict[str, Any]:
    """Check ``values`` against ``factory``'s schema and return all parameters, defaults filled in.

    Args:
        what: names the component in messages, e.g. ``"model 'vae'"``.
        where: ``key -> " (file.toml, line 12)"`` locator appended to messages.

    Raises:
        SuiteError: unknown key (lists the valid ones), wrong type, or a required key missing.
    """
    params = schema(factory)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in params:
            valid = ", ".join(params) or "none"
            raise SuiteError(f"{what}: unknown parameter {key!r}{where(key)}; valid parameters: {valid}")
        ann = params[key].annotation
        if not _type_ok(value, ann):
            raise SuiteError(
                f"{what}: parameter {key!r}{where(key)} must be {_type_name(ann)}, "
                f"got {type(value).__name__} {value!r}"
            )
        out[key] = _coerce(value, ann)
    for p in params.values():
        if p.name not in out:
            if p.required:
                raise SuiteError(f"{what}: required parameter {p.name!r} is missing")
            out[p.name] = p.default
    return out
