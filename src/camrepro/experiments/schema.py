"""Typed parameter schemas: one merge of profile + overrides, one validation, the defaults in one place.

A chapter declares its parameters once::

    SCHEMA = Schema("opticam", {
        "models": Param(["mobilenet_v2"], list, item=str, choices=models.MODELS, min_length=1),
        "n_images": Param(16, int, minimum=1),
        "optimisation": Schema("optimisation", {"iterations": Param(100, int, minimum=1),
                                                "lr": Param(0.1, float, minimum=0)}),
        "method_options": Param({}, dict),          # free-form mapping, checked by the chapter
    })
    params = SCHEMA.resolve(profile_section, overrides)

An unknown key is an error naming the known ones; a value of the wrong type, below its minimum or outside
its choices is an error naming the chapter, the key and the value. Bools are never accepted as numbers, ints
are accepted as floats, a string is never a number.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

_TYPE_NAMES = {int: "an int", float: "a number", str: "a string", bool: "true or false", list: "a list",
               dict: "a mapping"}


def _is(value: object, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


@dataclass(frozen=True)
class Param:
    """One parameter: its default, its type (int, float, str, bool, list, dict) and its limits.

    ``item``: the type of a list's items; ``choices``: allowed values (of the value, or of each list item);
    ``minimum`` / ``maximum``: bounds of a number (or of each numeric list item); ``nullable``: None allowed;
    ``check``: a last callable ``check(value) -> str | None`` returning an error message.
    """

    default: object
    kind: type
    item: type | None = None
    choices: Collection[object] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int = 0
    nullable: bool = False
    check: Callable[[object], str | None] | None = None
    doc: str = ""

    def validate(self, value: object, where: str) -> object:
        if value is None and self.nullable:
            return None
        if not _is(value, self.kind):
            raise TypeError(f"{where} must be {_TYPE_NAMES[self.kind]}, got {value!r} "
                            f"({type(value).__name__})")
        if self.kind is list:
            if len(value) < self.min_length:
                raise ValueError(f"{where} must list at least {self.min_length} item(s), got {value!r}")
            value = [self._scalar(v, f"{where}[{i}]", self.item) for i, v in enumerate(value)]
        elif self.kind is dict:
            value = copy.deepcopy(dict(value))
        else:
            value = self._scalar(value, where, self.kind)
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ValueError(f"{where}: {problem}")
        return value

    def _scalar(self, value: object, where: str, kind: type | None) -> object:
        if kind is not None and not _is(value, kind):
            raise TypeError(f"{where} must be {_TYPE_NAMES[kind]}, got {value!r} ({type(value).__name__})")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where} must be one of {sorted(map(str, self.choices))}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{where} must be ≥ {self.minimum:g}, got {value!r}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{where} must be ≤ {self.maximum:g}, got {value!r}")
        return float(value) if kind is float else value


@dataclass(frozen=True)
class Schema:
    """A mapping of named :class:`Param` s and nested :class:`Schema` s; ``extra``: keys a nested section may
    hold beyond its fields (e.g. a folder source's root), each a :class:`Param`."""

    name: str
    fields: Mapping[str, Param | Schema]
    check: Callable[[dict[str, object]], str | None] | None = None
    extra: Mapping[str, Param] = field(default_factory=dict)

    def defaults(self) -> dict[str, object]:
        return {k: f.defaults() if isinstance(f, Schema) else copy.deepcopy(f.default)
                for k, f in self.fields.items()}

    def resolve(self, *layers: Mapping[str, object] | None, where: str | None = None) -> dict[str, object]:
        """The defaults with each of ``layers`` merged on top in turn (nested sections key by key), validated."""
        where = where or self.name
        merged = self.defaults()
        for layer in layers:
            merged = self._merge(merged, layer or {}, where)
        return self._validate(merged, where)

    def _merge(self, base: dict[str, object], layer: object, where: str) -> dict[str, object]:
        if not isinstance(layer, Mapping):
            raise TypeError(f"{where} parameters must be a mapping, got {layer!r} ({type(layer).__name__})")
        known = {**self.fields, **self.extra}
        unknown = sorted(str(k) for k in layer if k not in known)
        if unknown:
            raise ValueError(f"unknown {where} parameter(s) {unknown}; the known ones are {sorted(known)}")
        out = dict(base)
        for key, value in layer.items():
            spec = known[key]
            if isinstance(spec, Schema):
                out[key] = spec._merge(dict(base.get(key) or {}), value, f"{where}.{key}")
            else:
                out[key] = copy.deepcopy(value)
        return out

    def _validate(self, values: dict[str, object], where: str) -> dict[str, object]:
        out = {}
        for key, value in values.items():
            spec = {**self.fields, **self.extra}[key]
            if isinstance(spec, Schema):
                out[key] = spec._validate(dict(value), f"{where}.{key}")
            else:
                out[key] = spec.validate(value, f"{where}.{key}")
        if self.check is not None:
            problem = self.check(out)
            if problem:
                raise ValueError(f"{where}: {problem}")
        return out
