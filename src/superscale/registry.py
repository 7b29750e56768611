"""A registry of pluggable implementations: one instance per registered class, by name.

Collective algorithms and pipeline schedules use it: a new one is a module with a class
and an `@register("name")` line (STYLE.md, "Extension points").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named instances of registered classes."""

    def __init__(self) -> None:
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[type[Any]], type[Any]]:
        """Class decorator: instantiate the class, set its `name`, and register it."""

        def wrap(cls: type[Any]) -> type[Any]:
            instance = cls()
            instance.name = name
            self._items[name] = instance
            return cls

        return wrap

    def all(self) -> dict[str, T]:
        return dict(self._items)
