"""A read-only registry of named catalog entries loaded from package YAML files.

Each domain (chips, links, systems, clusters, models) owns one `Catalog`. Files hold a YAML
list of entries; every entry is validated into its spec class, names must be unique
lowercase-kebab, and lookups of unknown names suggest the nearest known name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from superscale.errors import SpecError, unknown_name_message
from superscale.spec import spec_error_from

T = TypeVar("T", bound=BaseModel)

_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


def read_catalog_yaml(package: str, filename: str) -> list[dict[str, Any]]:
    """Read one catalog file (a YAML list of mappings) from package data."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise SpecError(f"catalog file {package}/{filename} must be a list of mappings")
    return data


class Catalog(Generic[T]):
    """Named entries of one kind, validated at construction; immutable afterwards."""

    def __init__(
        self, kind: str, entries: list[dict[str, Any]], build: Callable[[dict[str, Any]], T]
    ) -> None:
        self.kind = kind
        items: dict[str, T] = {}
        for raw in entries:
            name = raw.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                raise SpecError(f"{kind} catalog entry needs a lowercase-kebab name, got {name!r}")
            if name in items:
                raise SpecError(f"duplicate {kind} '{name}' in catalog")
            try:
                items[name] = build(raw)
            except ValidationError as exc:
                raise spec_error_from(exc, prefix=f"{kind}[{name}]") from None
        self._items = items

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise SpecError(unknown_name_message(self.kind, name, self._items)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)
