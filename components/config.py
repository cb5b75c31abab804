"""One loader for every family's typed config.

Configs are frozen dataclasses (``@dataclass(frozen=True)``) defined next to the component they
configure: once built and validated, a config is not changed by anything that reads it (a run that
needs another value, such as an absolute ``checkpoint.dir``, makes a new config with
``dataclasses.replace``). Values live in YAML under ``configs/``. This module turns a YAML mapping
(plus ``--set a.b=value`` overrides) into the dataclass, refusing anything it does not understand
*before* any work starts: unknown keys (with the closest valid key for a typo), wrong types and
out-of-range values, each named by its dotted key path with the bad value and what is allowed.

Field docs and ranges ride in ``dataclasses.field(metadata=...)`` through :func:`param`, so the
dataclass stays the single source of truth for names, types, defaults, docs and bounds.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")
_YAML11_FLOAT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key, the value and what is allowed."""


def param(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    factory: Any = dataclasses.MISSING,
    allow_inf: bool = False,
) -> Any:
    """A dataclass field with a one-line doc and optional numeric bounds.

    A float field refuses NaN and ±inf (``.inf``/``.nan`` in YAML, ``1e999``); ``allow_inf`` lets it
    take +inf where that means "no limit" (NaN is never a value).
    """
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "allow_inf": allow_inf}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """A nested config section whose defaults come from its own dataclass."""
    return dataclasses.field(
        default_factory=cls, metadata={"doc": (cls.__doc__ or "").strip().split("\n")[0]}
    )


# ---------------------------------------------------------------------------------------------
# Building a dataclass from plain data


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple, Sequence):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (dict, Mapping):
        return "mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({getattr(tp, '__name__', tp)})"
    return getattr(tp, "__name__", str(tp))


class _NotFinite(ConfigError):
    pass


def _finite(value: float, path: str, allow_inf: bool) -> float:
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        allowed = "a finite number or .inf (no limit)" if allow_inf else "a finite number"
        raise _NotFinite(f"{path}: {value!r} is not allowed; allowed: {allowed}")
    return value


def _coerce(value: Any, tp: Any, path: str, allow_inf: bool = False) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int → float only).

    Floats (also inside lists and unions of this field) must be finite, or +inf with ``allow_inf``.
    """
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{path}: {value!r} is not allowed; allowed: {', '.join(map(repr, allowed))}{hint}"
            )
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path, allow_inf)
            except _NotFinite:
                raise  # a number, just not one allowed here: say so, not "not a float | null"
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{path}: {value!r} is not a {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping of {_type_name(tp)} keys, got {value!r}")
        return build(tp, value, path)  # type: ignore[arg-type]
    if origin in (list, tuple, Sequence):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{path}: expected a {_type_name(tp)}, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}: {value!r}")
            return tuple(
                _coerce(v, a, f"{path}[{i}]", allow_inf) for i, (v, a) in enumerate(zip(value, args))
            )
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{path}[{i}]", allow_inf) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 1e6 in YAML is a float
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            # YAML 1.1 reads 1e-3 (no dot) as a string; users mean the number
            return _finite(float(value), path, allow_inf)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return _finite(float(value), path, allow_inf)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    return value


def _check_bounds(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    checks = [
        ("ge", ">=", lambda v, b: v >= b),
        ("gt", ">", lambda v, b: v > b),
        ("le", "<=", lambda v, b: v <= b),
        ("lt", "<", lambda v, b: v < b),
    ]
    for key, _sym, ok in checks:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            allowed = " and ".join(f"{s} {meta[k]}" for k, s, _ in checks if meta.get(k) is not None)
            raise ConfigError(f"{path}: {value!r} is out of range; allowed: {allowed}")


def build(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, validating every key and value."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    renamed: Mapping[str, str] = getattr(cls, "RENAMED", {})  # old key → new, for a clear refusal
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else key
            if key in renamed:
                new = f"{path}.{renamed[key]}" if path else renamed[key]
                raise ConfigError(f"{where} was renamed {new}; set {new} instead (same values)")
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key {where!r}.{hint} Allowed here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{path}.{name}" if path else name
        if name in data:
            raw = data[name]
            if f.default_factory is not dataclasses.MISSING and isinstance(raw, Mapping):
                # A partial section keeps the rest of *this field's* default (a factory may set
                # other values than the section class's own defaults).
                default = f.default_factory()
                if dataclasses.is_dataclass(default):
                    raw = _overlay(default, raw)
            value = _coerce(raw, hints[name], where, bool(f.metadata.get("allow_inf")))
            _check_bounds(value, f.metadata, where)
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {where!r} ({f.metadata.get('doc', '')})")
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path or cls.__name__}: {e}") from e
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def _overlay(base: Any, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of dataclass instance ``base`` as plain data with ``raw`` laid over them, nested
    sections merged key by key (unknown keys pass through, for :func:`build` to report)."""
    out = to_dict(base)
    names = {f.name for f in dataclasses.fields(base)}
    for key, value in raw.items():
        current = getattr(base, key) if key in names else None  # YAML keys may be numbers or bools
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            out[key] = _overlay(current, value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# YAML, overrides, dumping


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], value parsed as YAML so ints, floats, bools and lists work)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.lr=0.001")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: the key {key!r} is not a dotted path like train.lr")
    value = parse_yaml(raw, f"--set {text!r}: the value") if raw.strip() else ""
    return key.split("."), value


MAX_YAML_BYTES = 1 << 20  # a config is a few KB; a sweep's state holds one
MAX_YAML_NODES = 100_000  # nodes after expanding aliases (an "alias bomb" expands to billions)
MAX_YAML_DEPTH = 64


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int, where: str) -> int:
    """How many nodes ``node`` stands for once aliases are expanded (each counted where it is used)."""
    if depth > MAX_YAML_DEPTH:
        raise ConfigError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels")
    if id(node) in memo:
        return memo[id(node)]
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo, depth + 1, where) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(k, memo, depth + 1, where) + _expanded_size(v, memo, depth + 1, where)
            for k, v in node.value
        )
    memo[id(node)] = size
    if size > MAX_YAML_NODES:
        raise ConfigError(
            f"{where}: expands to more than {MAX_YAML_NODES} values (YAML aliases repeating aliases?); "
            f"a config is a few hundred values"
        )
    return size


def parse_yaml(text: str, where: str) -> Any:
    """YAML with its cost bounded before anything walks it: at most 1 MiB, 64 levels and 100,000
    values with aliases expanded, so a crafted file (an alias bomb) is refused in milliseconds
    instead of hanging whatever copies or validates it."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: {len(text)} bytes; a config is at most {MAX_YAML_BYTES} bytes")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        _expanded_size(node, {}, 0, where)
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML ({e})") from e
    except RecursionError:
        raise ConfigError(f"{where}: nested too deep") from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=value`` override set (paths are checked by build)."""
    out = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        _set_path(out, keys, value, f"--set {text!r}")
    return out


def apply_values(data: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Like :func:`apply_overrides`, with already-parsed values keyed by dotted path."""
    out = _deep_copy(data)
    for dotted, value in values.items():
        _set_path(out, dotted.split("."), _deep_copy(value), dotted)
    return out


def _set_path(root: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    node = root
    for k in keys[:-1]:
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{where}: {k!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with clear errors for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        if p.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{p}: {p.stat().st_size} bytes; a config is at most {MAX_YAML_BYTES} bytes")
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file; a config is YAML text") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror or e})") from None
    data = parse_yaml(text, str(p))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML file (or defaults) with ``--set`` overrides applied."""
    data = read_yaml(path) if path is not None else {}
    return build(cls, apply_overrides(data, overrides))


def to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain data (tuples become lists), ready for YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}, for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def describe(cls: type, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, doc) for every leaf field, for help texts and docs.

    A section's defaults are the ones its field gives (``defaults``, from a factory), which may
    differ from the section class's own.
    """
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if defaults is not None:
            default = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(tp):
            nested = default if dataclasses.is_dataclass(default) else None
            rows.extend(describe(tp, key, nested))  # type: ignore[arg-type]
            continue
        rows.append((key, _type_name(tp), default, f.metadata.get("doc", "")))
    return rows
