"""One plug-in mechanism for every component: a name maps to a factory and a typed parameter dataclass.

A new dataset, process, model, regularizer, sampler or feature extractor is one decorated factory:

    @REGULARIZERS.register("fourier_penalty", FourierPenaltyParams)
    def fourier_penalty(params: FourierPenaltyParams, **context) -> Regularizer: ...

A parameter's valid values are declared once, next to it, with `param` (`cutoff: float = param(0.25, gt=0)`):
build_params and the run settings check them, and `freqdiff list` / `freqdiff train --help` show them. Every
float must be a finite number (NaN and inf are refused) unless its field says `allow_inf=True`, and every int
must fit in 64 bits, whether or not a range is declared.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


def printable(text: str) -> str:
    """`text` with what UTF-8 cannot print escaped: the undecodable bytes of a path (lone surrogates) show as \\xNN."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class FreqdiffError(ValueError):
    """A user-facing error: its message is one line that names the bad value and the choices, always printable."""

    def __init__(self, message: object = "", echoed: bool = False) -> None:
        """`echoed`: a rank's copy of the error that the main rank prints and exits 2 on (data-parallel ranks fail
        alike): this rank exits quietly, so the launcher stops no rank before the main one has printed its line."""
        super().__init__(printable(str(message)))
        self.echoed = echoed


@dataclass(frozen=True)
class NoParams:
    """Parameters of a component that takes none."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    params: type
    doc: str
    meta: dict[str, Any] = field(default_factory=dict)  # what the entry declares about itself (a dataset: its values)


def check_choice(value: str, choices: "typing.Sequence[str]", where: str) -> None:
    """Fail naming the bad value and the choices if `value` is not one of `choices`."""
    if value not in choices:
        raise FreqdiffError(f"{where}: unknown value {value!r}; choices: {', '.join(choices)}")


INT_LIMIT = 2**63  # every int parameter lies in (-INT_LIMIT, INT_LIMIT): torch and numpy hold it in 64 bits
SEED_MAX = 2**32 - 1  # the largest seed (numpy's legacy limit); seed * 1_000_003 + batch still fits torch's 64 bits


def _number_text(x: float) -> str:
    """A bound as read in messages: ints in full (4294967295, not 4.29497e+09), floats with %g."""
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Range:
    """The valid values of one parameter: bounds, a list of choices, or positive multiples of a number.

    Beyond the bounds, a float must be finite (inf is refused unless `allow_inf`; NaN always) and an int must fit in
    64 bits: every parameter means a finite number unless it says otherwise."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    multiple_of: int | None = None
    allow_inf: bool = False

    def text(self) -> str:
        """The range as read in messages and listings: '>= 1', 'in [0, 1)', 'one of a, b', ..."""
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        parts = [self._bounds()] if (self.ge, self.gt, self.le, self.lt) != (None,) * 4 else []
        if self.multiple_of is not None:
            parts.append(f"a positive multiple of {self.multiple_of}")
        if self.allow_inf:
            parts.append("inf allowed")
        return " and ".join(parts) or "any value"

    def _bounds(self) -> str:
        t = _number_text
        low = f"[{t(self.ge)}" if self.ge is not None else f"({t(self.gt)}" if self.gt is not None else None
        high = f"{t(self.le)}]" if self.le is not None else f"{t(self.lt)})" if self.lt is not None else None
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f">= {t(self.ge)}" if self.ge is not None else f"> {t(self.gt)}"
        return f"<= {t(self.le)}" if self.le is not None else f"< {t(self.lt)}"

    def _finite(self, value: Any) -> str | None:
        """What `value` must be instead when it is not the finite number a parameter means; None when it is one."""
        if isinstance(value, float) and math.isinf(value) and not self.allow_inf:
            return "a finite number"
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT_LIMIT:
            return "a 64-bit integer"
        return None

    def _multiple(self, value: Any) -> bool:
        return self.multiple_of is None or (value > 0 and value % self.multiple_of == 0)

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt)
                and self._multiple(value))

    def check(self, value: Any, name: str, where: str) -> None:
        """Fail naming the value and this range; None (an unset optional) passes, each item of a tuple is checked."""
        for item in () if value is None else value if isinstance(value, (tuple, list)) else (value,):
            shown = item if item is value else f"{item} in {value}"
            if isinstance(item, float) and math.isnan(item):
                bound = f"; {name} must be {self.text()}" if self != Range() else ""
                raise FreqdiffError(f"{where}: nan is not a number{bound}")
            if self.choices is not None:
                check_choice(item, self.choices, where)
            elif not self._multiple(item):
                m = self.multiple_of
                first = max(m, -(-int(self.ge or 0) // m) * m)
                raise FreqdiffError(f"{where}: {shown} is not a positive multiple of {m}; choose {first}, {first + m}, "
                                    f"{first + 2 * m}, ...")
            elif not self.contains(item):
                raise FreqdiffError(f"{where}: {shown} is out of range: {name} must be {self.text()}")
            finite = self._finite(item)  # within the bounds, but no finite number (inf) or beyond 64 bits
            if finite is not None:
                bound = f" {self.text()}" if self != Range() else ""
                raise FreqdiffError(f"{where}: {shown} is out of range: {name} must be {finite}{bound}")


def param(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
          lt: float | None = None, choices: "typing.Sequence[str] | None" = None, multiple_of: int | None = None,
          allow_inf: bool = False) -> Any:
    """A dataclass field with its default and its valid values, declared once next to the parameter
    (a float is finite unless `allow_inf`)."""
    valid = Range(ge, gt, le, lt, tuple(choices) if choices is not None else None, multiple_of, allow_inf)
    return field(default=default, metadata={"range": valid})


def field_range(f: dataclasses.Field) -> Range | None:
    """The Range declared with `param` for a dataclass field, if any."""
    return f.metadata.get("range")


def range_text(f: dataclasses.Field) -> str:
    """'  (>= 1)' for a field declared with a range, '' otherwise: the suffix of a listing line."""
    valid = field_range(f)
    each = "each " if isinstance(f.default, tuple) else ""
    return f"  ({each}{valid.text()})" if valid is not None else ""


def check_fields(obj: Any, where: str = "") -> None:
    """Check every declared range of dataclass `obj` (NaN and inf are refused for every float unless a field allows
    inf; an int must fit in 64 bits); fields are named `where.field`, or `--field` when `where` is empty (the run
    settings)."""
    for f in fields(obj):
        (field_range(f) or Range()).check(getattr(obj, f.name), f.name, f"{where}.{f.name}" if where else f"--{f.name}")


def _closest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.0)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _base_type(annotation: Any) -> tuple[type, bool]:
    """The concrete type of a field annotation and whether None is allowed (Optional[X] / X | None)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported parameter annotation {annotation!r}")
        return _base_type(args[0])[0], True
    if origin in (tuple, list):
        return origin, False
    return annotation, False


def _without_none(annotation: Any) -> Any:
    """X for an Optional[X] annotation (X | None), else the annotation: where a tuple's item type is read."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1
    return args[0] if optional else annotation


JSON_TYPES: dict[type, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (int, float), str: (str,),
                                           tuple: (list, tuple), list: (list, tuple)}


def parse_value(text: Any, annotation: Any, where: str, strict: bool = False) -> Any:
    """Convert a command-line string (or a JSON value) to the annotated type, or fail naming `where`.

    strict (a value read from a file such as config.json): the value must already have its JSON type (an int for an
    int, null for None): the string "16" is no int there, though `--n 16` is."""
    kind, optional = _base_type(annotation)
    if strict and not (optional and text is None):
        allowed = JSON_TYPES.get(kind, (kind,))
        if not isinstance(text, allowed) or (isinstance(text, bool) and bool not in allowed):
            expected = type_name(annotation).replace("None", "null")
            raise FreqdiffError(f"{where}: expected {expected}, got {text!r}")
    if optional and (text is None or (isinstance(text, str) and text.lower() == "none")):
        return None
    try:
        if kind is bool:
            if isinstance(text, bool):
                return text
            lowered = str(text).lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind is int:
            if isinstance(text, float) and not text.is_integer():
                raise ValueError
            value = float(text) if isinstance(text, str) and ("e" in text.lower()) else text
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(text)
        if kind is str:
            if not isinstance(text, str):
                raise ValueError
            return text
        if kind in (tuple, list):
            (item,) = set(typing.get_args(_without_none(annotation))) - {Ellipsis} or {str}
            items = text.split(",") if isinstance(text, str) else list(text)
            return kind(parse_value(i, item, where, strict) for i in items if i != "")
    except (ValueError, TypeError):
        raise FreqdiffError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {text!r}") from None
    raise TypeError(f"{where}: unsupported parameter type {annotation!r}")


def type_name(annotation: Any) -> str:
    kind, optional = _base_type(annotation)
    name = getattr(kind, "__name__", str(kind))
    if kind in (tuple, list):
        items = typing.get_args(_without_none(annotation))
        name = f"{name}[{', '.join('...' if a is Ellipsis else getattr(a, '__name__', str(a)) for a in items)}]"
    return f"{name} | None" if optional else name


def option_lines(cls: type, notes: dict[str, str] | None = None, indent: str = "  ") -> list[str]:
    """A --help line per field of an options dataclass: --name type = default (range), then its note, if any."""
    hints, notes = typing.get_type_hints(cls), notes or {}
    return [f"{indent}--{f.name} {type_name(hints[f.name])} = {f.default!r}{range_text(f)}"
            + (f"   {notes[f.name]}" if f.name in notes else "") for f in fields(cls)]


def build_params(cls: type, values: dict[str, Any], where: str, strict: bool = False) -> Any:
    """Instantiate the dataclass `cls` from strings or JSON values, checking names and types (strict: JSON values
    of their own types only, as read from a file; see parse_value)."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    if not isinstance(values, dict):
        raise FreqdiffError(f"{where}: expected an object of parameters, got {values!r}")
    for key in values:
        if key not in known:
            choices = ", ".join(known) or "none"
            raise FreqdiffError(f"{where}: unknown parameter '{key}'{_closest(key, known)}; parameters: {choices}")
    params = cls(**{k: parse_value(v, hints[k], f"{where}.{k}", strict) for k, v in values.items()})
    check_fields(params, where)
    return params


class Registry(Generic[T]):
    """A named table of factories, each with a parameter dataclass; the one plug-in mechanism."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        ALL_REGISTRIES[kind] = self

    def register(self, name: str, params: type = NoParams,
                 **meta: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register `factory(params, **context)` under `name` with parameter class `params`; `meta` is what
        the entry declares about itself, read by its package (a dataset: `values=None` when they are not pixels)."""
        if not is_dataclass(params):
            raise TypeError(f"{self.kind} '{name}': params must be a dataclass")

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            doc = (factory.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, factory, params, doc[0] if doc else "", dict(meta))
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            choices = ", ".join(self.names())
            raise FreqdiffError(
                f"unknown {self.kind} '{name}'{_closest(name, self.names())}; choices: {choices}"
            )
        return self._entries[name]

    def params(self, name: str, values: dict[str, Any] | None = None, strict: bool = False) -> Any:
        """The typed parameters of `name` built from strings or JSON values (strict: JSON values of their types)."""
        values = {} if values is None else values
        return build_params(self.entry(name).params, values, f"{self.kind} '{name}'", strict)

    def build(self, name: str, params: Any = None, **context: Any) -> T:
        """Construct component `name`; `params` is its dataclass, a dict of values, or None for defaults."""
        entry = self.entry(name)
        if isinstance(params, entry.params):
            check_fields(params, f"{self.kind} '{name}'")
        else:
            params = self.params(name, params)
        return entry.factory(params, **context)

    def describe(self) -> str:
        lines = [f"{self.kind}:"]
        for name in self.names():
            entry = self._entries[name]
            lines.append(f"  {name}" + (f"  - {entry.doc}" if entry.doc else ""))
            hints = typing.get_type_hints(entry.params)
            for f in fields(entry.params):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                lines.append(f"      --{self.kind}.{f.name}: {type_name(hints[f.name])} = {default!r}{range_text(f)}")
        return "\n".join(lines)


ALL_REGISTRIES: dict[str, Registry[Any]] = {}


@dataclass
class Component:
    """A registered component chosen by name, with its parameter values as given (strings or JSON)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def resolved(self, registry: Registry[Any]) -> dict[str, Any]:
        """All parameters with defaults filled in and types checked, as plain JSON values."""
        return dataclasses.asdict(registry.params(self.name, self.params))
