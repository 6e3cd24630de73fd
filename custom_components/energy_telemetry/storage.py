"""What an entry remembers across restarts beyond its entities: a small JSON document per entry.

Sections are owned by their users (for example the DER ids the Novacore site last listed); each
reads its section at set-up and asks for a delayed save when it changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN

STORAGE_VERSION: Final = 1
SAVE_DELAY: Final = 10.0
"""Seconds to gather changes into one write."""


def _key(entry_id: str) -> str:
    return f"{DOMAIN}.{entry_id}"


class EntryStore:
    """The stored document of one config entry."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Prepare the store; `async_load` reads it."""
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, _key(entry.entry_id))
        self.data: dict[str, Any] = {}
        self._providers: dict[str, Callable[[], Any]] = {}

    async def async_load(self) -> None:
        """Read the document; a missing or malformed one is an empty one."""
        stored = await self._store.async_load()
        self.data = dict(stored) if isinstance(stored, dict) else {}

    def section(self, name: str) -> Any:
        """Return a section as it was loaded (None when there is none)."""
        return self.data.get(name)

    def provide(self, name: str, provider: Callable[[], Any]) -> None:
        """Register the function that returns a section's current content."""
        self._providers[name] = provider

    def async_schedule_save(self) -> None:
        """Save every section soon (changes within SAVE_DELAY are written once)."""
        self._store.async_delay_save(self._collect, SAVE_DELAY)

    async def async_save(self) -> None:
        """Save every section now (on unload)."""
        await self._store.async_save(self._collect())

    def _collect(self) -> dict[str, Any]:
        self.data.update({name: provider() for name, provider in self._providers.items()})
        return self.data


async def async_remove_store(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the document of an entry that is removed."""
    await Store[dict[str, Any]](hass, STORAGE_VERSION, _key(entry_id)).async_remove()
