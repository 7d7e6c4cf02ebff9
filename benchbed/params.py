"""A factory's keyword-only signature is its hyperparameter schema (scikit-learn's rule).

``schema(factory)`` reads the parameters; ``resolve(...)`` checks a suite's values against them:
unknown keys are rejected with the list of valid ones, values of the wrong type are rejected
naming the key (and the element of a list at fault), and values outside a declared range are
rejected naming the key, the element, the range and the value.

Ranges are declared with `annotated-types <https://github.com/annotated-types/annotated-types>`_
metadata inside the annotation, at any depth::

    latent_dim: Annotated[int, Gt(0)] = 16                                     # > 0
    target_accept: Annotated[float, Interval(gt=0, lt=1)] = 0.65               # in (0, 1)
    hidden: tuple[Annotated[int, Gt(0)], ...] = (256, 256)                     # each element > 0
    widths: Annotated[tuple[Annotated[int, Gt(0)], ...], MinLen(1)] = (8,)     # non-empty, each > 0
    n_examples: Annotated[int | None, Gt(0)] = None                            # None, or > 0

Enforced: ``Gt``, ``Ge``, ``Lt``, ``Le``, ``Interval``, ``MultipleOf``, ``MinLen``, ``MaxLen``, ``Len``
and ``Predicate``, on the value itself, on the elements of ``tuple``/``list``/``Sequence`` values and
on the values of ``dict`` values, and in whichever arm of a union the value takes.  Other metadata
is ignored.  A constraint never applies to ``None`` (``Annotated[int | None, Gt(0)]`` accepts None).

Non-finite floats: every float a suite gives where the annotation says ``float`` (also inside
tuples, lists, dicts) must be finite.  ``inf`` and ``-inf`` are accepted only where the parameter
says so, with the marker :class:`AllowInf` in its annotation (``Annotated[float | None, Gt(0), AllowInf]``:
"``inf`` = unbounded") or with an infinite default (``limit: float = math.inf``); NaN only where the
default is NaN.  Declared bounds still apply to infinite values.

The checks read annotations only: run ids hash the resolved values, which do not depend on them.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import annotated_types as at

from benchbed.errors import SuiteError

_MISSING = inspect.Parameter.empty
_SEQUENCES = (list, tuple, typing.Sequence, collections.abc.Sequence)
_MAPPINGS = (dict, typing.Mapping, collections.abc.Mapping)
_BOUNDS = (at.Gt, at.Ge, at.Lt, at.Le)


class AllowInf:
    """Annotation marker: this float parameter (or every float inside it) accepts ``inf`` and ``-inf``.

    Use the class or an instance: ``code_bound: Annotated[float | None, Gt(0), AllowInf] = None``.
    Bounds declared beside it still apply (``Gt(0)`` refuses ``-inf``).
    """

    def __repr__(self) -> str:
        return "AllowInf"


@dataclass(frozen=True)
class Violation:
    """A value outside its declared range.

    ``path`` locates the offending part inside the value (``""`` for the value itself, ``"[1]"``,
    ``"['key']"``, ``"[0][2]"``); ``must`` completes "must ...", e.g. ``"be > 0"``; ``value`` is
    the offending part.
    """

    path: str
    must: str
    value: Any

    def message(self, name: str) -> str:
        """``'name'[1] must be > 0, got 0``."""
        return f"{name!r}{self.path} must {self.must}, got {self.value!r}"


@dataclass(frozen=True)
class Param:
    """One hyperparameter: name, default (``inspect.Parameter.empty`` when required) and annotation.

    ``annotation`` is the type without constraint metadata (what the type checks read);
    ``declared`` is the annotation as written, ``Annotated[...]`` metadata included.
    """

    name: str
    default: Any
    annotation: Any
    declared: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    @property
    def _declared(self) -> Any:
        return self.annotation if self.declared is _MISSING else self.declared

    @property
    def constraints(self) -> str:
        """The declared range in words, e.g. ``"> 0"``, ``"in (0, 1)"``, ``"non-empty; each > 0"``; ``""``
        when none is declared."""
        parts = _describe(self._declared, "")
        if "inf allowed" not in parts and self._nonfinite_default()[0]:
            parts.append("inf allowed")
        return "; ".join(parts)

    def _nonfinite_default(self) -> tuple[bool, bool]:
        floats = [v for v in _floats(self.default)]
        return any(math.isinf(v) for v in floats), any(math.isnan(v) for v in floats)

    def check(self, value: Any) -> Violation | None:
        """The first part of ``value`` outside the declared range (``None`` when all is in range).

        ``value`` must already fit the type (see :func:`resolve`).
        """
        allow_inf, allow_nan = self._nonfinite_default()
        return check_value(value, self._declared, allow_inf=allow_inf, allow_nan=allow_nan)


def _floats(value: Any) -> Iterable[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _floats(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _floats(v)


def schema(factory: Callable[..., Any]) -> dict[str, Param]:
    """The keyword parameters of ``factory`` (a class or a function), in signature order.

    Positional-only parameters and ``*args``/``**kwargs`` are not part of a schema.
    """
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
        declared = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations just skip type checking
        hints, declared = {}, {}
    sig = inspect.signature(factory)
    out: dict[str, Param] = {}
    for p in sig.parameters.values():
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            out[p.name] = Param(p.name, p.default, hints.get(p.name, p.annotation), declared.get(p.name, p.annotation))
    return out


# ------------------------------------------------------------------------------------------------
# types


def _is_union(origin: Any) -> bool:
    return origin in (typing.Union, types.UnionType)


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits an annotation (int is accepted where float is expected)."""
    if annotation in (_MISSING, Any, object):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_ok(value, typing.get_args(annotation)[0])
    if _is_union(origin):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin in _SEQUENCES or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return not args or all(_type_ok(v, args[0]) for v in value)
    if origin in _MAPPINGS or annotation is dict:
        pair = typing.get_args(annotation)
        return isinstance(value, dict) and (len(pair) != 2 or all(_type_ok(v, pair[1]) for v in value.values()))
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_name(annotation: Any, inner: bool = False) -> str:
    """``int``, ``tuple[int, ...]``, ``float | None``; a Literal reads "one of 'a', 'b'" (``inner``:
    inside another type, ``Literal['a', 'b']``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0], inner)
    if origin is typing.Literal:
        values = ", ".join(repr(a) for a in args)
        return f"Literal[{values}]" if inner else f"one of {values}"
    if _is_union(origin):
        return " | ".join(_type_name(a, True) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None and args:
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        return f"{name}[{', '.join('...' if a is Ellipsis else _type_name(a, True) for a in args)}]"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _bad_element(value: Any, annotation: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The innermost element of a container ``value`` that does not fit ``annotation``:
    ``(path, its annotation, the element)``; ``None`` when no element is at fault."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _bad_element(value, args[0], path)
    if _is_union(origin):
        for arm in args:
            arm_origin = typing.get_origin(arm)
            if arm_origin is Annotated:
                arm_origin = typing.get_origin(typing.get_args(arm)[0])
            if (isinstance(value, list | tuple) and arm_origin in _SEQUENCES) or (
                    isinstance(value, dict) and arm_origin in _MAPPINGS):
                return _bad_element(value, arm, path)
        return None
    if origin in _SEQUENCES and isinstance(value, list | tuple):
        items: Iterable[tuple[str, Any]] = ((f"[{i}]", v) for i, v in enumerate(value))
        element = [a for a in args if a is not Ellipsis]
    elif origin in _MAPPINGS and isinstance(value, dict) and len(args) == 2:
        items, element = ((f"[{k!r}]", v) for k, v in value.items()), [args[1]]
    else:
        return None
    if not element:
        return None
    for sub, v in items:
        if not _type_ok(v, element[0]):
            return _bad_element(v, element[0], path + sub) or (path + sub, element[0], v)
    return None


def _coerce(value: Any, annotation: Any) -> Any:
    """TOML arrays become tuples where the schema says tuple; ints become floats for float params
    (also inside ``X | None`` and ``tuple[float, ...]``)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _coerce(value, typing.get_args(annotation)[0])
    if _is_union(origin):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and _type_ok(value, arg):
                return _coerce(value, arg)
        return value
    if (origin is tuple or annotation is tuple) and isinstance(value, list | tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return tuple(_coerce(v, args[0]) if args else v for v in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# ------------------------------------------------------------------------------------------------
# constraints


def _metadata(items: Iterable[Any]) -> list[Any]:
    """``Annotated`` metadata with grouped entries (``Interval``, ``Len``) unpacked."""
    out: list[Any] = []
    for m in items:
        if isinstance(m, at.GroupedMetadata):
            out.extend(_metadata(m))
        else:
            out.append(m)
    return out


def _is_allow_inf(m: Any) -> bool:
    return m is AllowInf or isinstance(m, AllowInf)


def _bound_value(m: Any) -> Any:
    return next(getattr(m, a) for a in ("gt", "ge", "lt", "le") if hasattr(m, a))


def _range_text(bounds: list[Any]) -> str:
    """``"> 0"``, ``"in (0, 1)"``, ``"in [0, 1)"``, or several bounds joined with "and"."""
    lows = [m for m in bounds if isinstance(m, at.Gt | at.Ge)]
    highs = [m for m in bounds if isinstance(m, at.Lt | at.Le)]
    if len(lows) == 1 and len(highs) == 1:
        lo, hi = lows[0], highs[0]
        return (f"in {'(' if isinstance(lo, at.Gt) else '['}{_bound_value(lo)!r}, "
                f"{_bound_value(hi)!r}{')' if isinstance(hi, at.Lt) else ']'}")
    ops = {at.Gt: ">", at.Ge: ">=", at.Lt: "<", at.Le: "<="}
    return " and ".join(f"{ops[type(m)]} {_bound_value(m)!r}" for m in bounds)


def _holds(value: Any, m: Any) -> bool:
    try:
        if isinstance(m, at.Gt):
            return bool(value > m.gt)
        if isinstance(m, at.Ge):
            return bool(value >= m.ge)
        if isinstance(m, at.Lt):
            return bool(value < m.lt)
        if isinstance(m, at.Le):
            return bool(value <= m.le)
        if isinstance(m, at.MultipleOf):
            return bool(value % m.multiple_of == 0)
        if isinstance(m, at.Predicate):
            return bool(m.func(value))
    except Exception:  # noqa: BLE001 - a value the constraint cannot even be evaluated on is outside it
        return False
    return True


def _predicate_name(m: at.Predicate) -> str:
    func = m.func
    name = getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", None)
    return f"{module}.{name}" if module in ("math", "cmath", "operator") else name


def _length_words(m: Any, value: Any) -> str:
    unit = "characters" if isinstance(value, str) else "elements"
    if isinstance(m, at.MinLen):
        return "not be empty" if m.min_length == 1 else f"have at least {m.min_length} {unit}"
    return f"have at most {m.max_length} {unit}"


def _check_metadata(value: Any, meta: list[Any], path: str) -> Violation | None:
    bounds = [m for m in meta if isinstance(m, _BOUNDS)]
    if bounds and not all(_holds(value, m) for m in bounds):
        return Violation(path, "be " + _range_text(bounds), value)
    for m in meta:
        if isinstance(m, at.MinLen | at.MaxLen):
            try:
                n = len(value)
            except TypeError:
                continue
            if (isinstance(m, at.MinLen) and n < m.min_length) or (isinstance(m, at.MaxLen) and n > m.max_length):
                return Violation(path, _length_words(m, value), value)
        elif isinstance(m, at.MultipleOf) and not _holds(value, m):
            return Violation(path, f"be a multiple of {m.multiple_of!r}", value)
        elif isinstance(m, at.Predicate) and not _holds(value, m):
            return Violation(path, f"satisfy {_predicate_name(m)}", value)
    return None


def check_value(value: Any, annotation: Any, *, allow_inf: bool = False, allow_nan: bool = False,
                path: str = "") -> Violation | None:
    """The first part of ``value`` outside the range ``annotation`` declares, or ``None``.

    ``value`` must already fit the annotation's type.  Floats must be finite unless ``allow_inf``
    (or an :class:`AllowInf` marker on the way down) / ``allow_nan`` says otherwise; see the module
    docstring for the rule.
    """
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        meta = _metadata(args[1:])
        allow_inf = allow_inf or any(_is_allow_inf(m) for m in meta)
        inner = check_value(value, args[0], allow_inf=allow_inf, allow_nan=allow_nan, path=path)
        return inner or _check_metadata(value, meta, path)
    if _is_union(origin):
        for arm in args:
            if _type_ok(value, arm):
                return check_value(value, arm, allow_inf=allow_inf, allow_nan=allow_nan, path=path)
        return None
    if origin in _SEQUENCES and isinstance(value, list | tuple):
        if origin is tuple and args and Ellipsis not in args:
            element_types = list(args) if len(args) == len(value) else []
        else:
            element_types = [args[0]] * len(value) if args else []
        for i, (v, a) in enumerate(zip(value, element_types, strict=False)):
            bad = check_value(v, a, allow_inf=allow_inf, allow_nan=allow_nan, path=f"{path}[{i}]")
            if bad:
                return bad
        return None
    if origin in _MAPPINGS and isinstance(value, dict) and len(args) == 2:
        for k, v in value.items():
            bad = check_value(v, args[1], allow_inf=allow_inf, allow_nan=allow_nan, path=f"{path}[{k!r}]")
            if bad:
                return bad
        return None
    if annotation is float and isinstance(value, float):
        if (math.isnan(value) and not allow_nan) or (math.isinf(value) and not allow_inf):
            return Violation(path, "be finite", value)
    return None


def _describe(annotation: Any, prefix: str) -> list[str]:
    """Short texts of the constraints declared in ``annotation`` (``"> 0"``, ``"each > 0"``, ...)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        meta = _metadata(args[1:])
        own: list[str] = []
        bounds = [m for m in meta if isinstance(m, _BOUNDS)]
        if bounds:
            own.append(_range_text(bounds))
        for m in meta:
            if isinstance(m, at.MinLen):
                own.append("non-empty" if m.min_length == 1 else f"len >= {m.min_length}")
            elif isinstance(m, at.MaxLen):
                own.append(f"len <= {m.max_length}")
            elif isinstance(m, at.MultipleOf):
                own.append(f"multiple of {m.multiple_of!r}")
            elif isinstance(m, at.Predicate):
                own.append(f"satisfies {_predicate_name(m)}")
        out = [prefix + text for text in own] + _describe(args[0], prefix)
        if any(_is_allow_inf(m) for m in meta):
            out.append("inf allowed")
        return out
    if _is_union(origin):
        return [text for arm in args for text in _describe(arm, prefix)]
    if origin in _SEQUENCES and args:
        if origin is tuple and Ellipsis not in args and len(args) > 1:
            return [text for i, a in enumerate(args) for text in _describe(a, f"{prefix}[{i}] ")]
        return _describe(args[0], prefix + "each ")
    if origin in _MAPPINGS and len(args) == 2:
        return _describe(args[1], prefix + "each value ")
    return []


# ------------------------------------------------------------------------------------------------


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
        SuiteError: unknown key (lists the valid ones), wrong type (naming the element at fault in a
            list), a value outside its declared range (naming the element), or a required key missing.
    """
    params = schema(factory)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in params:
            valid = ", ".join(params) or "none"
            raise SuiteError(f"{what}: unknown parameter {key!r}{where(key)}; valid parameters: {valid}")
        param = params[key]
        ann = param.annotation
        if not _type_ok(value, ann):
            bad = _bad_element(value, ann)
            detail = "" if bad is None else (f" ({key!r}{bad[0]} is {type(bad[2]).__name__} {bad[2]!r}, "
                                             f"not {_type_name(bad[1])})")
            raise SuiteError(
                f"{what}: parameter {key!r}{where(key)} must be {_type_name(ann)}{detail}, "
                f"got {type(value).__name__} {value!r}"
            )
        violation = param.check(value)
        if violation is not None:
            raise SuiteError(f"{what}: parameter {key!r}{violation.path}{where(key)} must {violation.must}, "
                             f"got {violation.value!r}")
        out[key] = _coerce(value, ann)
    for p in params.values():
        if p.name not in out:
            if p.required:
                raise SuiteError(f"{what}: required parameter {p.name!r} is missing")
            out[p.name] = p.default
    return out
