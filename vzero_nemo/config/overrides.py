"""`key=value` overrides: dotted keys resolved against the config tree, one value parser
that type-checks against each field's annotation, and presets applied before the rest.

    apply_overrides(cfg, ["train.lr=3e-4", "logging.tags=[a, b]", "preset=official_code"])

An unknown key is an error that suggests the closest valid keys; a value that does not fit
the field's type is an error naming the key, the value and what is expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

from vzero_nemo.config.presets import PRESET_FIELDS

if TYPE_CHECKING:
    from vzero_nemo.config.tree import VZeroConfig

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"null", "none", "~"}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """All leaf fields of a config dataclass as {dotted.key: value}."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _resolve(cfg: Any, key: str) -> tuple[Any, str]:
    """Return (parent dataclass, leaf name) for a dotted key, or raise with suggestions."""
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            valid = list(flatten(cfg))
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
            if not close:
                close = [v for v in valid if v.endswith("." + parts[-1])][:3]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown config key {key!r}{hint}")
        value = getattr(node, part)
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(value):
                raise ValueError(
                    f"config key {key!r} is a section, not a value; set one of its fields, "
                    f"e.g. {key}.{dataclasses.fields(value)[0].name}=..."
                )
            return node, part
        if not dataclasses.is_dataclass(value):
            raise ValueError(f"config key {key!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = value
    raise AssertionError("unreachable")


def parse_value(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` to the field type `tp` (an annotation), or raise ValueError naming `key`.

    `value` is override text (`"3e-4"`, `"null"`, `"[a, b]"`) or a Python value set in code
    (recipes, presets, a tuple's items): text is parsed, any other value is type-checked
    (an int is accepted for a float)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _parse_union(value, tp, key)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{key}={value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin is tuple:
        return tuple(parse_value(item, args[0], key) for item in _items(value, key))
    if isinstance(value, str):
        return _parse_text(value, tp, key)
    return _check_value(value, tp, key)


def _parse_union(value: Any, tp: Any, key: str) -> Any:
    """The first member of an `X | None` (or wider) union that accepts `value`."""
    args = typing.get_args(tp)
    text = value if isinstance(value, str) else None
    if type(None) in args and (value is None or (text or "").strip().lower() in _NONE):
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return parse_value(value, arg, key)
        except ValueError as err:
            errors.append(str(err))
    if text is not None:
        raise ValueError("; ".join(errors))
    raise ValueError(f"{key}={value!r} does not match type {tp}")


def _items(value: Any, key: str) -> list[Any]:
    """A tuple field's items: `a,b`, `[a, b]` or `(a, b)` as text, or a list / tuple."""
    if not isinstance(value, str):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key}={value!r} is not a sequence")
        return list(value)
    body = value.strip()
    if body.startswith("[") and body.endswith("]") or body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    return [s.strip() for s in body.split(",") if s.strip()]


def _parse_text(text: str, tp: Any, key: str) -> Any:
    """Override text as a bool, int, float or str."""
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError(f"{key}={text!r} is not a boolean; use true or false")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            kind = "an integer" if tp is int else "a number"
            raise ValueError(f"{key}={text!r} is not {kind}") from None
    if tp is str:
        return text
    raise ValueError(f"{key}: unsupported field type {tp!r}")


def _check_value(value: Any, tp: Any, key: str) -> Any:
    """A Python value (not text) of type `tp`; bools are not numbers, ints are floats."""
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    raise ValueError(f"{key}={value!r} is not of type {getattr(tp, '__name__', tp)}")


def set_value(cfg: Any, key: str, value: Any) -> None:
    """Set one dotted field, type-checked (`value` may be override text or a Python value)."""
    parent, name = _resolve(cfg, key)
    tp = typing.get_type_hints(type(parent))[name]
    setattr(parent, name, parse_value(value, tp, key))


def apply_preset(cfg: VZeroConfig, preset: str) -> None:
    """Set every field of the named preset (`vzero_nemo.config.presets`)."""
    if preset not in PRESET_FIELDS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESET_FIELDS)}")
    cfg.preset = preset  # type: ignore[assignment]
    for key, value in PRESET_FIELDS[preset].items():
        set_value(cfg, key, value)


def apply_overrides(cfg: VZeroConfig, overrides: list[str]) -> None:
    """Apply `key=value` overrides in order; `preset=...` is applied first."""
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. train.lr=1e-5)")
        key, value = item.split("=", 1)
        key = key.strip().lstrip("+")
        if not key:
            raise ValueError(f"override {item!r} has an empty key")
        pairs.append((key, value))
    for key, value in pairs:
        if key == "preset":
            apply_preset(cfg, value)
    for key, value in pairs:
        if key != "preset":
            set_value(cfg, key, value)
