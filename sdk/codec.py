"""One codec for every file format splitsdk reads and writes: typed dataclasses <-> JSON/TOML values.

Each file format (plan.json, a bundle's manifest.json, a target TOML, `splitsdk-project.json`,
`firmware.json`, the receiver's TOML config) is one frozen dataclass tree, declared once; this module
turns it into plain values and back, and writes its JSON Schema. Decoding is strict:

- unknown keys are errors (a misspelt `clock_mz` is refused, not ignored);
- types are checked as declared (`"16"` is not an int, `"false"` is not a bool, an int is a float);
- ranges and choices come from field metadata (`field(default=16, metadata=bounds(ge=1))`);
- every error names the field by its path (`limits.max_batch: expected an integer, got str`).

The owner of each format wraps `CodecError` into its own typed error with the file's name in front.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")
_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class CodecError(ValueError):
    """A value that does not match its declared type; `path` is the field's dotted path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Bounds:
    """Range of a number field (inclusive `ge`/`le`, exclusive `gt`/`lt`), finite unless `finite=False`."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True

    def check(self, value: float, path: str) -> None:
        if self.finite and isinstance(value, float) and not math.isfinite(value):
            raise CodecError(path, f"expected a finite number, got {value}")
        for bound, ok, word in (
            (self.ge, lambda b: value >= b, ">="),
            (self.gt, lambda b: value > b, ">"),
            (self.le, lambda b: value <= b, "<="),
            (self.lt, lambda b: value < b, "<"),
        ):
            if bound is not None and not ok(bound):
                raise CodecError(path, f"must be {word} {_num(bound)}, got {_num(value)}")


def bounds(
    ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
    finite: bool = True,
) -> dict[str, Bounds]:
    """Field metadata for a range check: `field(default=16, metadata=bounds(ge=1, le=4096))`."""
    return {"bounds": Bounds(ge, gt, le, lt, finite)}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**63 else repr(x)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> bool:
    return _is_union(tp) and type(None) in get_args(tp)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


# -- decoding ---------------------------------------------------------------------------------------
def decode(cls: type[T], data: Any, path: str = "") -> T:
    """`data` (parsed JSON/TOML) as an instance of the dataclass `cls`, checked field by field."""
    return typing.cast(T, _decode(cls, data, path, None))


def _decode(tp: Any, value: Any, path: str, rng: Bounds | None) -> Any:
    if tp is Any or tp is object:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _decode_dataclass(tp, value, path)
    origin = get_origin(tp)
    if _is_union(tp):
        members = get_args(tp)
        if value is None:
            if type(None) in members:
                return None
            raise CodecError(path, "must not be null")
        errors = []
        for m in members:
            if m is type(None):
                continue
            try:
                return _decode(m, value, path, rng)
            except CodecError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise CodecError(path, f"expected {' or '.join(_type_name(m) for m in members)}, got {_kind(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices or type(value) is not type(choices[0]):
            raise CodecError(path, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    if tp in _SCALARS:
        accepts, wanted = _SCALARS[tp]
        if not accepts(value):
            raise CodecError(path, f"expected {wanted}, got {_kind(value)}")
        if tp is float:
            value = float(value)
            (rng or _FINITE).check(value, path)
        elif tp is int and rng:
            rng.check(value, path)
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise CodecError(path, f"expected a path (a non-empty string), got {_kind(value)}")
        return Path(value)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise CodecError(path, f"expected a list, got {_kind(value)}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise CodecError(path, f"expected a list of {len(args)} items, got {len(value)}")
            return tuple(_decode(a, v, f"{path}[{i}]", rng) for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        out = [_decode(item, v, f"{path}[{i}]", rng) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise CodecError(path, f"expected a table, got {_kind(value)}")
        kt, vt = get_args(tp) or (str, Any)
        out_d: dict[Any, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CodecError(path, f"keys must be strings, got {_kind(k)}")
            out_d[_decode(kt, k, _join(path, k), None)] = _decode(vt, v, _join(path, k), rng)
        return out_d
    raise TypeError(f"codec: unsupported field type {tp!r} at {path or 'top level'}")


_FINITE = Bounds()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# scalar type -> (accepts a parsed value, what the error says was expected): a string is never a number or a
# boolean, a boolean never a number, an integer is a float too
_SCALARS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (_is_int, "an integer"),
    float: (lambda v: _is_int(v) or isinstance(v, float), "a number"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _decode_dataclass(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise CodecError(path, f"expected a table, got {_kind(value)}")
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(k for k in value if k not in known)
    if unknown:
        where = _join(path, str(unknown[0]))
        raise CodecError(where, f"unknown key (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CodecError(_join(path, name), "missing")
            continue
        rng = f.metadata.get("bounds")
        kwargs[name] = _decode(hints[name], value[name], _join(path, name), rng)
    try:
        return cls(**kwargs)
    except CodecError:
        raise
    except (ValueError, TypeError) as exc:  # a __post_init__ check
        raise CodecError(path, str(exc)) from exc


# -- encoding ---------------------------------------------------------------------------------------
def encode(obj: Any) -> Any:
    """A dataclass tree as JSON-ready values: fields in declaration order, tuples as lists, paths as text."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    """Deterministic JSON text of a dataclass tree (2-space indent, trailing newline)."""
    return json.dumps(encode(obj), indent=2, allow_nan=True) + "\n"


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `path` through a temporary sibling and a rename: a failure leaves the old file as it was."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- JSON Schema ------------------------------------------------------------------------------------
def json_schema(cls: type, title: str | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a dataclass tree, with `$defs` for nested classes."""
    defs: dict[str, Any] = {}
    root = _schema(cls, defs, None)
    out: dict[str, Any] = {"$schema": _SCHEMA_DIALECT, "title": title or cls.__name__}
    out.update(defs.pop(cls.__name__) if "$ref" in root else root)
    if defs:
        out["$defs"] = dict(sorted(defs.items()))
    return out


def _schema(tp: Any, defs: dict[str, Any], rng: Bounds | None) -> dict[str, Any]:
    if tp is Any or tp is object:
        return {}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = _hints(tp)
            props: dict[str, Any] = {}
            required: list[str] = []
            for f in dataclasses.fields(tp):
                if not f.init:
                    continue
                props[f.name] = _schema(hints[f.name], defs, f.metadata.get("bounds"))
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    required.append(f.name)
            entry: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
            if tp.__doc__ and not tp.__doc__.startswith(f"{name}("):
                entry["description"] = " ".join(tp.__doc__.split())
            if required:
                entry["required"] = required
            defs[name] = entry
        return {"$ref": f"#/$defs/{name}"}
    if _is_union(tp):
        return {"anyOf": [_schema(m, defs, rng) for m in get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if get_origin(tp) is Literal:
        return {"enum": list(get_args(tp))}
    if tp is bool:
        return {"type": "boolean"}
    if tp in (int, float):
        out: dict[str, Any] = {"type": "integer" if tp is int else "number"}
        for key, word in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"), ("lt", "exclusiveMaximum")):
            if rng is not None and getattr(rng, key) is not None:
                out[word] = getattr(rng, key)
        return out
    if tp in (str, Path):
        return {"type": "string"}
    origin = get_origin(tp)
    if origin in (tuple, list):
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = [_schema(a, defs, rng) for a in args]
            return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
        return {"type": "array", "items": _schema(args[0] if args else Any, defs, rng)}
    if origin in (dict, Mapping) or tp is dict:
        args = get_args(tp)
        return {"type": "object", "additionalProperties": _schema(args[1] if args else Any, defs, rng)}
    raise TypeError(f"codec: no JSON Schema for {tp!r}")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", Path: "a path"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )
