"""The benchmark's probe: what the scale scenario waits for, answered inside Home Assistant.

`bench_probe:` in YAML registers one websocket command, `bench_probe/watch`, a subscription that
counts the entities of one config entry as they reach a state, timed with the monotonic clock
(the same clock in every process of the machine). Modes: `value` (each entity shows a value: not
unknown, unavailable or a restored placeholder), `changed` (each shows a value other than the one
it showed when the watch began), `setup` (the entry's next set-up: the moments of its state
changes and, once it is loaded, how many of its registered entities the set-up brought back). It
sends a `progress` event once a second at most, and a `done` event when the count reaches the
target (`setup`: when the entry is loaded).

The rule: the probe costs both sides the same, and little. It never streams state changes over
the websocket (with 11,000 entities that would cost Home Assistant more than what is measured);
a listener on `state_changed` whose filter is one registry look-up skips every other entity.
"""

from __future__ import annotations

from collections.abc import Callable
import time
from typing import Any

from homeassistant.components.websocket_api import async_register_command
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.decorators import websocket_command
from homeassistant.components.websocket_api.messages import event_message
from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
    ConfigEntryState,
)
from homeassistant.const import ATTR_RESTORED, EVENT_STATE_CHANGED, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.typing import ConfigType
import voluptuous as vol

DOMAIN = "bench_probe"
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)
MODES = ("value", "changed", "setup")
NO_VALUE = (STATE_UNKNOWN, STATE_UNAVAILABLE)
PROGRESS_INTERVAL = 1.0


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the websocket command."""
    async_register_command(hass, websocket_watch)
    return True


def _shows_value(state: State | None) -> bool:
    return (
        state is not None and state.state not in NO_VALUE and ATTR_RESTORED not in state.attributes
    )


class Watch:
    """Counts one entry's entities as they reach the state a mode asks for."""

    def __init__(
        self,
        hass: HomeAssistant,
        name: str,
        entry_id: str,
        mode: str,
        target: int,
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        """Take the entry's present states; listen from now on."""
        self.hass = hass
        self.name = name
        self.entry_id = entry_id
        self.mode = mode
        self.target = target
        self.send = send
        self.registry = er.async_get(hass)
        self.counted: set[str] = set()
        self.started = time.monotonic()
        self.first: float | None = None
        self.last: float | None = None
        self.states: dict[str, float] = {}
        """Entry state -> monotonic time it was entered (mode `setup`)."""
        self.done = False
        self._progress_at = self.started
        self._unsubs: list[Callable[[], None]] = []
        self.before: dict[str, str | None] = {}
        for entity in er.async_entries_for_config_entry(self.registry, entry_id):
            state = hass.states.get(entity.entity_id)
            self.before[entity.entity_id] = None if state is None else state.state
            if mode == "value" and _shows_value(state):
                self.counted.add(entity.entity_id)
        self.counting = mode != "setup"
        """Mode `setup` counts nothing before the set-up begins (the unload writes states too)."""

    def start(self) -> None:
        """Listen; finish at once when there is nothing left to wait for."""
        self._unsubs.append(
            self.hass.bus.async_listen(
                EVENT_STATE_CHANGED, self._state_changed, event_filter=self._ours
            )
        )
        if self.mode == "setup":
            self._unsubs.append(
                async_dispatcher_connect(
                    self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._entry_changed
                )
            )
        elif len(self.counted) >= self.target:
            self._finish(self.started)

    @callback
    def stop(self) -> None:
        """Stop listening."""
        while self._unsubs:
            self._unsubs.pop()()

    @callback
    def _ours(self, data: EventStateChangedData) -> bool:
        entity = self.registry.entities.get(data["entity_id"])
        return entity is not None and entity.config_entry_id == self.entry_id

    @callback
    def _state_changed(self, event: Event[EventStateChangedData]) -> None:
        if not self.counting or self.done:
            return
        entity_id = event.data["entity_id"]
        if entity_id in self.counted:
            return
        state = event.data["new_state"]
        if self.mode == "value":
            ok = _shows_value(state)
        elif self.mode == "changed":
            ok = (
                state is not None
                and state.state not in NO_VALUE
                and state.state != self.before.get(entity_id)
            )
        else:  # setup: any state its entity wrote, unknown and unavailable included
            ok = state is not None and ATTR_RESTORED not in state.attributes
        if not ok:
            return
        now = time.monotonic()
        self.counted.add(entity_id)
        self.first = self.first or now
        self.last = now
        if self.mode != "setup" and len(self.counted) >= self.target:
            self._finish(now)
        elif now - self._progress_at >= PROGRESS_INTERVAL:
            self._progress_at = now
            self.send(self._message("progress", now))

    @callback
    def _entry_changed(self, change: ConfigEntryChange, entry: ConfigEntry) -> None:
        if entry.entry_id != self.entry_id or change is not ConfigEntryChange.UPDATED:
            return
        now = time.monotonic()
        state = entry.state
        self.states.setdefault(state.value, now)
        if state is ConfigEntryState.SETUP_IN_PROGRESS:
            self.counting = True
            self.counted.clear()
        elif self.counting:
            # Loaded (or failed): what the set-up brought back is there now.
            states = self.hass.states
            back = sum(
                1
                for entity in er.async_entries_for_config_entry(self.registry, self.entry_id)
                if (found := states.get(entity.entity_id)) is not None
                and ATTR_RESTORED not in found.attributes
            )
            self._finish(now, count=back, registered=len(self.before), outcome=state.value)

    def _message(self, kind: str, now: float, **extra: Any) -> dict[str, Any]:
        message = {
            "watch": self.name,
            "kind": kind,
            "mode": self.mode,
            "count": len(self.counted),
            "target": self.target,
            "started": self.started,
            "first": self.first,
            "last": self.last,
            "at": now,
            "states": dict(self.states),
        }
        message.update(extra)
        return message

    def _finish(self, now: float, **extra: Any) -> None:
        self.done = True
        self.stop()
        self.send(self._message("done", now, **extra))


@websocket_command(
    {
        vol.Required("type"): "bench_probe/watch",
        vol.Required("name"): str,
        vol.Required("entry_id"): str,
        vol.Required("mode"): vol.In(MODES),
        vol.Optional("target", default=0): vol.Coerce(int),
    }
)
@callback
def websocket_watch(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Start a watch; its events carry the watch's name."""
    msg_id = msg["id"]

    @callback
    def send(message: dict[str, Any]) -> None:
        connection.send_message(event_message(msg_id, message))

    watch = Watch(hass, msg["name"], msg["entry_id"], msg["mode"], msg["target"], send)
    connection.subscriptions[msg_id] = watch.stop
    connection.send_result(msg_id)
    watch.start()
