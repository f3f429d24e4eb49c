"""Name -> object registries (models, losses, split rules, ...).

Lookups that fail list every valid key, so a typo on the command line is a one-step fix.
``plugins`` names modules (not imported by the registry's owner, so no import cycle, and a
lower layer never imports a higher one: docs/architecture.md) whose import registers more
entries; they are imported on the first lookup of a name not registered yet, or when the
names are listed.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

from tdml.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, plugins: tuple[str, ...] = ()):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._plugins = list(plugins)

    def _load_plugins(self) -> None:
        while self._plugins:
            importlib.import_module(self._plugins.pop(0))

    def register(self, name: str) -> Callable[[T], T]:
        key = name.lower()

        def deco(obj: T) -> T:
            if key in self._items:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name.lower() not in self._items:
            self._load_plugins()
        try:
            return self._items[name.lower()]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
