"""Pair sources for the shard writer: the per-domain generators and their `--opt key=value`s.

A generators module exposes `GENERATORS: dict[str, Callable]` (domain -> `generate_pair(seed,
index, **options) -> PairSample`) and `OPTIONS: dict[str, type]` (domain -> options dataclass).
The default is `data_prep.generators`; `--generators MODULE` plugs in another one. The module is
imported lazily (in each worker process), so the CLI starts fast and `verify`/`import` never
import rendering code.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from vzero_nemo.data.schema import PairSample

DEFAULT_GENERATORS_MODULE = "data_prep.generators"


def load_generators(module_name: str) -> tuple[dict[str, Any], dict[str, type]]:
    """(GENERATORS, OPTIONS) of a generators module, with a clear error if it lacks them."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"cannot import generators module {module_name!r}: {e}") from e
    generators = getattr(module, "GENERATORS", None)
    options = getattr(module, "OPTIONS", None)
    if not isinstance(generators, dict) or not isinstance(options, dict):
        raise ValueError(
            f"generators module {module_name!r} must define GENERATORS and OPTIONS dicts"
        )
    return generators, options


def _convert(text: str, tp: Any, key: str) -> Any:
    """Parse one option value given the dataclass field's type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)] or [str]
        return _convert(text, inner, key)
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"--opt {key}={text!r}: expected one of {list(args)}")
    if origin in (tuple, list):
        inner = args[0] if args else str
        items = [_convert(t.strip(), inner, key) for t in text.split(",") if t.strip()]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--opt {key}={text!r}: expected true or false")
    if tp in (int, float, str):
        try:
            return tp(text)
        except ValueError:
            raise ValueError(f"--opt {key}={text!r}: expected {tp.__name__}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"--opt {key}={text!r}: expected a JSON value for type {tp}") from None


def parse_options(options_cls: type, assignments: list[str]) -> tuple[dict[str, Any], Any]:
    """`["k=v", ...]` -> (overrides with typed values, the validated options instance)."""
    hints = typing.get_type_hints(options_cls)
    names = [f.name for f in dataclasses.fields(options_cls)]
    overrides: dict[str, Any] = {}
    for item in assignments:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--opt {item!r} must look like key=value")
        if key not in names:
            raise ValueError(
                f"unknown option {key!r} for {options_cls.__name__}; valid keys: {names}"
            )
        overrides[key] = _convert(value.strip(), hints[key], key)
    return overrides, options_cls(**overrides)


def options_to_json(options: Any) -> dict[str, Any]:
    """The resolved options as JSON-able data (recorded in the manifest)."""
    return json.loads(json.dumps(dataclasses.asdict(options)))


@dataclass(frozen=True, slots=True)
class GeneratorSource:
    """Pair i = GENERATORS[domain](seed, i, **options) from `module`; picklable for workers."""

    module: str
    domain: str
    seed: int
    options: tuple[tuple[str, Any], ...] = ()

    def __call__(self, index: int) -> PairSample:
        generators, _ = load_generators(self.module)
        if self.domain not in generators:
            raise ValueError(
                f"generators module {self.module!r} has no domain {self.domain!r}; "
                f"it has {sorted(generators)}"
            )
        return generators[self.domain](self.seed, index, **dict(self.options))


def make_generator_source(
    module: str, domain: str, seed: int, assignments: list[str]
) -> tuple[GeneratorSource, dict[str, Any]]:
    """A validated source plus the run arguments it implies (for the manifest)."""
    generators, options_by_domain = load_generators(module)
    if domain not in generators or domain not in options_by_domain:
        raise ValueError(
            f"unknown domain {domain!r} for generators module {module!r}; "
            f"available: {sorted(generators)}"
        )
    overrides, options = parse_options(options_by_domain[domain], assignments)
    source = GeneratorSource(module, domain, seed, tuple(sorted(overrides.items())))
    arguments = {
        "source": "generate",
        "generators_module": module,
        "seed": seed,
        "options": options_to_json(options),
    }
    return source, arguments
