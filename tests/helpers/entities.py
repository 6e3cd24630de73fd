"""Reading what the integration's entities show."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib

from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback


def state(hass: HomeAssistant, entity_id: str) -> str:
    """Return an entity's state, which must exist."""
    current = hass.states.get(entity_id)
    assert current is not None, entity_id
    return current.state


def number(hass: HomeAssistant, entity_id: str) -> float:
    """Return an entity's state as a number."""
    return float(state(hass, entity_id))


def record_states(hass: HomeAssistant, entity_id: str, values: list[float]) -> None:
    """Append every numeric state of an entity, in the order it is written."""

    @callback
    def _listener(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if event.data["entity_id"] == entity_id and new is not None:
            with contextlib.suppress(ValueError):
                values.append(float(new.state))

    hass.bus.async_listen(EVENT_STATE_CHANGED, _listener)


@contextlib.contextmanager
def first_states(hass: HomeAssistant) -> Iterator[dict[str, str]]:
    """Collect, while the block runs, the first state each entity is written with."""
    first: dict[str, str] = {}

    @callback
    def _listener(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None:
            first.setdefault(event.data["entity_id"], new.state)

    unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, _listener)
    try:
        yield first
    finally:
        unsubscribe()
