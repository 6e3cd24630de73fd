"""The fuzz campaign: generated and mutated inputs of both services through running entries.

Three entries run in one Home Assistant: a Novacore site on the documented wire, a second on the
legacy wire (each behind its own Novacore-compatible server on loopback) and an Ainsite
subscription through a TLS mosquitto. Inputs (`chaos/fuzz_inputs.py`) go out in batches over the
real transports; after each batch every entity's state is compared with an independent oracle
(`chaos/oracle.py`), every state written during the batch must be one the oracle allows, totals
must not move backwards, the sign decisions must be the wire's truth, and Home Assistant's log must
hold no error and no traceback. `scripts/chaos --fuzz N [--seed S]` runs it with N inputs.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import gc
import logging
import math
import random
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

from custom_components.energy_telemetry.ainsite.coordinator import AinsiteCoordinator
from simulator.ainsite_publisher import Message, MqttPublisher
from simulator.flows import setup_novacore
from simulator.novacore_server import NovacoreServer, private_key_pem
from simulator.wait import WaitTimeoutError, wait_for
from simulator.wire import LEGACY

from .fuzz_inputs import (
    AINSITE,
    NOVACORE_DOCUMENTED,
    NOVACORE_LEGACY,
    REPEAT_KINDS,
    SOURCES,
    VALID,
    AinsiteFeed,
    Input,
    NovacoreFeed,
)
from .harness import UPSTREAM_LOGGER_NAME, AinsitePeer
from .oracle import (
    HOME_KEYS,
    LIMIT_KEYS,
    STALE_S,
    AinsiteOracle,
    NovacoreOracle,
    Shown,
    canonical,
)
from .report import ScenarioResult

SHORT_COUNT = 2000
SHORT_SEED = 20261121
BATCH = 400
SHARES = {NOVACORE_DOCUMENTED: 0.35, NOVACORE_LEGACY: 0.35, AINSITE: 0.30}
COUNTER_KINDS = ("pv", "battery", "meter", "ev_charger")
MAX_EXAMPLES = 10
LONG_RUN = 20_000
"""From this many inputs on, every DER with counters must have its sign decided by the end."""
WAIT_S = 60.0
_INTEGRATION_LOGGER = "custom_components.energy_telemetry"


@dataclass(frozen=True, slots=True)
class FuzzSetup(AinsitePeer):
    """The peers and the size of one campaign."""

    count: int
    seed: int
    batch: int = BATCH


# --- what Home Assistant logged and showed ------------------------------------------------------


class _LogWatch(logging.Handler):
    """Every error or traceback Home Assistant logs, and the integration's sign decisions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[str] = []
        self.decisions: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(UPSTREAM_LOGGER_NAME):
            return  # the upstream publisher stands for the service, outside Home Assistant
        if record.levelno >= logging.ERROR or record.exc_info:
            self.errors.append(f"{record.levelname} {record.name}: {record.getMessage()[:300]}")
        elif record.name.startswith(_INTEGRATION_LOGGER) and "Power sign of" in record.getMessage():
            self.decisions.append(record.getMessage())


@contextlib.contextmanager
def _watch_log() -> Iterator[_LogWatch]:
    """Watch the log, and the event loop's unhandled exceptions (a task that died)."""
    watch = _LogWatch()
    root = logging.getLogger()
    integration = logging.getLogger(_INTEGRATION_LOGGER)
    level = integration.level
    if not integration.isEnabledFor(logging.INFO):
        integration.setLevel(logging.INFO)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def _unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        watch.errors.append(f"unhandled: {context.get('message')} {context.get('exception')!r}")
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(_unhandled)
    root.addHandler(watch)
    try:
        yield watch
    finally:
        # A task that died holds its exception in a reference cycle: collected now, the loop
        # reports it ("Task exception was never retrieved") while this handler still listens.
        gc.collect()
        root.removeHandler(watch)
        loop.set_exception_handler(previous)
        integration.setLevel(level)


@contextlib.contextmanager
def _record_mqtt() -> Iterator[list[tuple[str, bytes]]]:
    """Every MQTT message handed to an Ainsite coordinator created inside the block, in order."""
    delivered: list[tuple[str, bytes]] = []
    original = AinsiteCoordinator._async_on_message  # noqa: SLF001

    def _message(self: AinsiteCoordinator, topic: str, payload: bytes) -> None:
        delivered.append((topic, bytes(payload)))
        original(self, topic, payload)

    AinsiteCoordinator._async_on_message = _message  # type: ignore[method-assign]  # noqa: SLF001
    try:
        yield delivered
    finally:
        AinsiteCoordinator._async_on_message = original  # type: ignore[method-assign]  # noqa: SLF001


@dataclass(slots=True)
class _Changes:
    """State changes of the integration's entities since the last check."""

    items: list[tuple[str, str, str | None]] = field(default_factory=list)


@contextlib.contextmanager
def _record_changes(hass: HomeAssistant) -> Iterator[_Changes]:
    changes = _Changes()

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None:
            changes.items.append(
                (event.data["entity_id"], new.state, new.attributes.get("unit_of_measurement"))
            )

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, _changed)
    try:
        yield changes
    finally:
        unsub()


def _shown_number(state: str, unit: str | None, watt_hours: bool) -> float | None:
    try:
        number = float(state)
    except ValueError:
        return None
    if watt_hours and unit == "kWh":
        number *= 1000.0
    return number


def _matches(shown: str, unit: str | None, expected: Shown, watt_hours: bool) -> bool:
    if isinstance(expected, str):
        return shown == expected
    number = _shown_number(shown, unit, watt_hours)
    return number is not None and math.isclose(number, expected, rel_tol=1e-9, abs_tol=1e-9)


# --- the campaign -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Site:
    """A Novacore source: its feed, server, entry and oracle."""

    feed: NovacoreFeed
    server: NovacoreServer
    oracle: NovacoreOracle
    entry: ConfigEntry[Any] | None = None
    events: int = 0
    """Events pushed so far."""


@dataclass(slots=True)
class _Tally:
    """What the campaign counted."""

    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    wrong: int = 0
    examples: list[str] = field(default_factory=list)
    sign_problems: list[str] = field(default_factory=list)
    backwards: int = 0
    lost: int = 0
    wrong_decisions: int = 0
    batches: int = 0
    check_s: float = 0.0
    resets_seen: dict[str, int] = field(default_factory=dict)
    """Entity id -> the oracle's resets of that total at the last check."""
    last_total: dict[str, float] = field(default_factory=dict)
    """Entity id -> the last number a total showed."""
    stall_notes: list[str] = field(default_factory=list)
    stalled: bool = False
    """An input never reached the integration: the campaign stops at the end of the batch."""
    compared: int = 0
    """Entity states compared with the oracle at the ends of batches."""
    written: int = 0
    """States written during batches, each checked against what the oracle allows."""

    def wrong_state(self, text: str) -> None:
        self.wrong += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)


def _frame(data: bytes) -> bytes:
    return b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"


def _truth(feed: NovacoreFeed) -> dict[str, int]:
    """The wire factor of each DER: -1 for the legacy wire's battery and meter."""
    ids = feed.model.der_ids
    inverted = {ids["battery"], ids["meter"]} if feed.wire == LEGACY else set()
    return {der: -1 if der in inverted else 1 for der in ids.values()}


async def run(setup: FuzzSetup) -> ScenarioResult:
    """Run the campaign; return its row with the summary in its notes."""
    started = time.monotonic()
    hass = setup.hass
    rng = random.Random(setup.seed)
    result = ScenarioResult(
        "fuzz",
        f"{setup.count} generated and mutated inputs (seed {setup.seed}): Novacore documented and "
        "legacy wire over SSE, Ainsite over MQTT, states checked against an oracle per batch",
    )
    now = datetime.now(UTC)
    # Simulated time ends before now: the site model's clock starts in the past.
    per_site = setup.count * SHARES[NOVACORE_DOCUMENTED] * 0.8 / 5
    mean = min(17.5, 2.0 * 86400 / max(per_site, 1.0))
    start = (now - timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    per_meter = setup.count * SHARES[AINSITE] * 0.8 / 12
    ainsite_mean = min(180.0, 8.0 * 86400 / max(per_meter, 1.0))
    sites = {
        source: _Site(
            feed := NovacoreFeed(
                source,
                f"sit-fuzz-{'legacy' if source == NOVACORE_LEGACY else 'doc'}",
                random.Random(rng.randrange(2**32)),
                start,
                (0.3 * mean, 1.7 * mean),
            ),
            NovacoreServer(keepalive_interval=0, wire=feed.wire),
            NovacoreOracle(feed.site_id, feed.devices, _truth(feed)),
        )
        for source in (NOVACORE_DOCUMENTED, NOVACORE_LEGACY)
    }
    ainsite_feed = AinsiteFeed(
        setup.customer_id,
        setup.subscription_id,
        random.Random(rng.randrange(2**32)),
        now - timedelta(days=10),
        (0.3 * ainsite_mean, 1.7 * ainsite_mean),
    )
    ainsite_oracle = AinsiteOracle()
    publisher = setup.upstream(window=100)
    tally = _Tally()
    published = 0
    with _watch_log() as log, _record_mqtt() as delivered, _record_changes(hass) as changes:
        try:
            for site in sites.values():
                await site.server.start()
                key = Ed25519PrivateKey.generate()
                site.server.add_identity(
                    base64.b64encode(key.public_key().public_bytes_raw()).decode()
                )
                site.server.add_site(site.feed.site_id, site.feed.model.name, site.feed.devices)
                site.entry = await setup_novacore(
                    hass, site.server, site.feed.site_id, private_key_pem(key)
                )
            ainsite_entry = await setup.add_entry()
            publisher.start()
            streams = {source: iter(site.feed) for source, site in sites.items()} | {
                AINSITE: iter(ainsite_feed)
            }
            first: list[Input] = [
                *sites[NOVACORE_DOCUMENTED].feed.first(),
                *sites[NOVACORE_LEGACY].feed.first(),
                *ainsite_feed.first(),
            ]
            batch = first
            total = 0
            weights = [SHARES[source] for source in SOURCES]
            while batch:
                total += len(batch)
                sent_at = time.monotonic()
                published += await _send(sites, publisher, batch, tally)
                await _settle(hass, sites, delivered, published, tally)
                check_started = time.monotonic()
                _feed_oracles(sites, ainsite_oracle, batch, delivered, sent_at)
                _check(hass, sites, ainsite_entry, ainsite_oracle, setup, changes, tally)
                tally.check_s += time.monotonic() - check_started
                tally.batches += 1
                size = 0 if tally.stalled else min(setup.batch, setup.count - total)
                batch = [
                    next(streams[source])
                    for source in rng.choices(SOURCES, weights, k=max(0, size))
                ]
            await publisher.stop()
            counters = _counters(sites, ainsite_entry)
            _final_checks(sites, counters, result, setup.count)
            for site in sites.values():
                assert site.entry is not None
                assert await hass.config_entries.async_unload(site.entry.entry_id)
            assert await hass.config_entries.async_unload(ainsite_entry.entry_id)
            await hass.async_block_till_done()
        finally:
            await publisher.stop()
            for site in sites.values():
                await site.server.stop()
    errors = list(log.errors)  # the watch has collected the garbage by now: a task that died
    result.duration_s = time.monotonic() - started
    _summarise(result, tally, counters, sites, ainsite_oracle, errors, published, setup)
    return result


async def _send(
    sites: dict[str, _Site], publisher: MqttPublisher, batch: list[Input], tally: _Tally
) -> int:
    """Push a batch: one write per site, the MQTT messages queued in order; return published."""
    frames: dict[str, list[bytes]] = {source: [] for source in sites}
    messages: list[Message] = []
    for item in batch:
        tally.sent[(item.source, item.kind)] += 1
        if item.source == AINSITE:
            assert item.topic is not None
            key = (item.topic, str(publisher.publishes + len(messages)), time.monotonic())
            messages.append(Message(item.topic, item.data, key))
        else:
            frames[item.source].append(_frame(item.data))
    for source, site in sites.items():
        if frames[source]:
            site.events += len(frames[source])
            await site.server.push_raw(site.feed.site_id, b"".join(frames[source]))
    if messages:
        publisher.put(messages)
    return len(messages)


async def _settle(
    hass: HomeAssistant,
    sites: dict[str, _Site],
    delivered: list[tuple[str, bytes]],
    published: int,
    tally: _Tally,
) -> None:
    """Wait until every event and message reached the integration and Home Assistant is idle."""

    def arrived() -> bool:
        return len(delivered) >= published and all(
            site.entry is not None and site.entry.runtime_data.stream.stats.events >= site.events
            for site in sites.values()
        )

    try:
        await wait_for(arrived, timeout=WAIT_S, what="every input of the batch", interval=0.005)
    except WaitTimeoutError:
        # The campaign stops after this batch, saying which inputs never arrived.
        missing = {AINSITE: published - len(delivered)}
        for source, site in sites.items():
            assert site.entry is not None
            stream = site.entry.runtime_data.stream
            missing[source] = site.events - stream.stats.events
            if missing[source]:
                tally.stall_notes.append(
                    f"{source}: {missing[source]} events not received; stream connected"
                    f" {stream.connected}, last error {stream.stats.last_error}"
                )
        tally.lost += sum(max(0, count) for count in missing.values())
        tally.stalled = True
    await hass.async_block_till_done()


def _feed_oracles(
    sites: dict[str, _Site],
    ainsite: AinsiteOracle,
    batch: list[Input],
    delivered: list[tuple[str, bytes]],
    sent_at: float,
) -> None:
    """Give the oracles the batch: SSE in the order sent, MQTT in the order delivered."""
    now = time.time()
    for item in batch:
        if item.source != AINSITE:
            sites[item.source].oracle.feed(item.data, now * 1000.0, sent_at)
    for topic, payload in delivered[ainsite.accepted + ainsite.rejected :]:
        ainsite.feed(topic.rsplit("/", 1)[1], payload, now)


def _check(
    hass: HomeAssistant,
    sites: dict[str, _Site],
    ainsite_entry: ConfigEntry[Any],
    ainsite: AinsiteOracle,
    setup: FuzzSetup,
    changes: _Changes,
    tally: _Tally,
) -> None:
    """Compare every entity with the oracles; check the states written since the last check."""
    registry = er.async_get(hass)
    batch = tally.batches
    checked_at = time.monotonic()
    owners: dict[str, tuple[str, str, str, bool, bool]] = {}
    """entity id -> (source, owner, key, may show unavailable, native unit Wh)."""
    allowed: dict[str, set[Shown]] = {}
    for source, site in sites.items():
        assert site.entry is not None
        oracle = site.oracle
        signs = site.entry.runtime_data.signs.diagnostics()
        for der, truth in oracle.truth.items():
            info = signs.get(der)
            if info is None or info["status"] != "decided":
                if oracle.decided.get(der):
                    tally.wrong_decisions += 1
                    tally.sign_problems.append(
                        f"batch {batch} {source} {der}: its sign decision is lost"
                        f" ({None if info is None else info['status']})"
                    )
                continue
            decided = 1 if info["evidence_decision"] == "documented" else -1
            if decided != truth:
                tally.wrong_decisions += 1
                tally.sign_problems.append(
                    f"batch {batch} {source} {der}: sign decided {info['evidence_decision']},"
                    f" the wire's factor is {truth:+d}"
                )
            elif not oracle.decided.get(der):
                oracle.decided[der] = True
                oracle.note_sign_change(der)
        prefix = f"{site.feed.site_id}_"
        keys = sorted(oracle.ders, key=len, reverse=True)
        seen: set[tuple[str, str]] = set()
        for entity in er.async_entries_for_config_entry(registry, site.entry.entry_id):
            if entity.disabled_by is not None or not entity.unique_id.startswith(prefix):
                continue
            rest = entity.unique_id[len(prefix) :]
            if rest in HOME_KEYS and oracle.home:
                _check_home(hass, entity.entity_id, rest, oracle, checked_at, tally, batch, source)
                owners[entity.entity_id] = (source, "", rest, True, rest == "home_energy")
                allowed[entity.entity_id] = oracle.produced.get(("", rest), set())
                continue
            found = next((key for key in keys if rest.startswith(f"{key}_")), None)
            if found is None:
                tally.wrong_state(f"batch {batch} {source}: unexpected entity {entity.unique_id}")
                continue
            der = found
            key = rest[len(der) + 1 :]
            expected = oracle.expected(der)
            # Unavailable is right for a limit no field feeds after a sign change, and for
            # anything of a DER that has been silent for a minute (stale).
            stale = oracle.ders[der].silence(checked_at) >= STALE_S
            may_go = stale or (oracle.truth.get(der, 1) < 0 and key in LIMIT_KEYS)
            watt_hours = key in expected and expected[key][1]
            owners[entity.entity_id] = (source, der, key, may_go, watt_hours)
            allowed[entity.entity_id] = oracle.produced.get((der, key), set())
            seen.add((der, key))
            state = hass.states.get(entity.entity_id)
            shown = "<no state>" if state is None else state.state
            tally.compared += 1
            if stale and shown == "unavailable":
                continue
            if key not in expected:
                if key in LIMIT_KEYS and shown == "unavailable":
                    continue  # no field feeds this limit under the DER's factor now
                tally.wrong_state(f"batch {batch} {source} {der} {key}: unexpected, shows {shown}")
                continue
            value, watt_hours = expected[key]
            unit = None if state is None else state.attributes.get("unit_of_measurement")
            if state is None or not _matches(shown, unit, value, watt_hours):
                tally.wrong_state(
                    f"batch {batch} {source} {der} {key}: shows {shown} {unit or ''},"
                    f" expected {value}"
                )
        for der in oracle.ders:
            for key in oracle.expected(der):
                if (der, key) not in seen and _enabled_key(key):
                    tally.wrong_state(f"batch {batch} {source} {der} {key}: no entity")
    prefix = f"{setup.customer_id}_"
    expected_ainsite = ainsite.expected()
    seen_ainsite: set[tuple[str, str]] = set()
    for entity in er.async_entries_for_config_entry(registry, ainsite_entry.entry_id):
        if entity.disabled_by is not None:
            continue
        meter, _, key = entity.unique_id.removeprefix(prefix).rpartition("_")
        if key == "reading" and meter.endswith("_last"):
            meter, key = meter.removesuffix("_last"), "last_reading"
        owners[entity.entity_id] = (AINSITE, meter, key, False, False)
        allowed[entity.entity_id] = ainsite.produced.get((meter, key), set())
        seen_ainsite.add((meter, key))
        tally.compared += 1
        state = hass.states.get(entity.entity_id)
        shown = "<no state>" if state is None else state.state
        if (meter, key) not in expected_ainsite:
            tally.wrong_state(f"batch {batch} ainsite {meter} {key}: unexpected, shows {shown}")
            continue
        value = expected_ainsite[(meter, key)]
        unit = None if state is None else state.attributes.get("unit_of_measurement")
        if state is None or not _matches(shown, unit, value, False):
            tally.wrong_state(
                f"batch {batch} ainsite {meter} {key}: shows {shown}, expected {value}"
            )
    for meter, key in set(expected_ainsite) - seen_ainsite:
        tally.wrong_state(f"batch {batch} ainsite {meter} {key}: no entity")
    ainsite.produced.clear()
    _check_changes(changes, owners, allowed, sites, ainsite, tally)
    for site in sites.values():
        site.oracle.checked()


def _check_home(
    hass: HomeAssistant,
    entity_id: str,
    key: str,
    oracle: NovacoreOracle,
    now: float,
    tally: _Tally,
    batch: int,
    source: str,
) -> None:
    """The house's consumption: the sum of its DERs' powers, the net growth of its counters."""
    tally.compared += 1
    state = hass.states.get(entity_id)
    shown = "<no state>" if state is None else state.state
    value, watt_hours = oracle.home_expected(now)[key]
    if value is None:
        # A DER of the house has no power yet, or went quiet: unavailable, never a part-sum
        # (or, for a quiet one not yet stale, the sum of the last powers).
        if shown == "unavailable" or key != "home_power":
            return
        powers = oracle.home_powers()
        unit = None if state is None else state.attributes.get("unit_of_measurement")
        number = _shown_number(shown, unit, False)
        if number is not None and powers and _produced(number, set(powers)):
            return
        tally.wrong_state(f"batch {batch} {source} {key}: shows {shown}, expected unavailable")
        return
    unit = None if state is None else state.attributes.get("unit_of_measurement")
    number = None if state is None else _shown_number(shown, unit, watt_hours)
    # The total adds its growth rounded to a mWh per event: allow that rounding, never more.
    tolerance = oracle.home_tolerance() if watt_hours else 1e-9
    if number is None or not math.isclose(number, float(value), rel_tol=0, abs_tol=tolerance):
        tally.wrong_state(
            f"batch {batch} {source} {key}: shows {shown} {unit or ''}, expected {value}"
        )


def _produced(number: float, produced: set[Shown]) -> bool:
    """Whether a number shown is one the oracle produced (Home Assistant may convert its unit)."""
    return canonical(number) in produced or any(
        isinstance(item, float) and math.isclose(number, item, rel_tol=1e-9, abs_tol=1e-9)
        for item in produced
    )


def _enabled_key(key: str) -> bool:
    return key != "read_time_ms"


def _check_changes(
    changes: _Changes,
    owners: dict[str, tuple[str, str, str, bool, bool]],
    allowed: dict[str, set[Shown]],
    sites: dict[str, _Site],
    ainsite: AinsiteOracle,
    tally: _Tally,
) -> None:
    """Every state written since the last check is one the oracle produced; totals only rise."""
    batch = tally.batches
    resets = {
        (source, *key): count
        for source, site in sites.items()
        for key, count in site.oracle.total_resets().items()
    } | {(AINSITE, *key): count for key, count in ainsite.total_resets().items()}
    drops: Counter[str] = Counter()
    for entity_id, shown, unit in changes.items:
        owner = owners.get(entity_id)
        if owner is None:
            continue  # another integration's entity, or one removed since
        source, der, key, may_go, watt_hours = owner
        tally.written += 1
        if shown == "unavailable" and may_go:
            continue
        expected_set = allowed[entity_id]
        if shown in expected_set:
            continue  # a text state
        number = _shown_number(shown, unit, watt_hours)
        if number is not None and (source, der, key) in resets:
            previous = tally.last_total.get(entity_id)
            if previous is not None and number < previous - 1e-9 * abs(previous):
                drops[entity_id] += 1
            tally.last_total[entity_id] = number
        if key == "home_energy" and number is not None:
            previous = tally.last_total.get(entity_id)
            if previous is not None and number < previous:
                tally.backwards += 1
                tally.wrong_state(f"batch {batch} {entity_id}: the house's energy went down")
            tally.last_total[entity_id] = number
            tolerance = sites[source].oracle.home_tolerance()
            if any(
                isinstance(item, float) and abs(number - item) <= tolerance for item in expected_set
            ):
                continue
        if number is None or not _produced(number, expected_set):
            tally.wrong_state(
                f"batch {batch} {source} {der} {key}: wrote {shown} {unit or ''}, which no input"
                " of the batch says"
            )
    reset_now = Counter(
        {
            entity_id: resets.get((source, der, key), 0)
            for entity_id, (source, der, key, _, _) in owners.items()
        }
    )
    for entity_id, count in drops.items():
        allowed_drops = reset_now[entity_id] - tally.resets_seen.get(entity_id, 0)
        if count > allowed_drops:
            tally.backwards += count - allowed_drops
            tally.wrong_state(f"batch {batch} {entity_id}: a total moved backwards")
    tally.resets_seen.update(reset_now)
    changes.items.clear()


def _counters(sites: dict[str, _Site], ainsite_entry: ConfigEntry[Any]) -> dict[str, Any]:
    """What the integration's diagnostics counted."""
    counters: dict[str, Any] = {}
    for source, site in sites.items():
        assert site.entry is not None
        data = site.entry.runtime_data.diagnostics()
        counters[source] = {
            "accepted": data["stream"]["accepted_readings"],
            "rejected": dict(data["stream"]["rejected"]),
            "stale": sum(group["dropped_stale"] for group in data["groups"].values()),
            "signs": data["signs"],
        }
    mqtt = ainsite_entry.runtime_data.diagnostics()["mqtt"]
    counters[AINSITE] = {
        "accepted": mqtt["accepted"],
        "rejected": dict(mqtt["rejected"]),
        "stale": mqtt["duplicates"] + mqtt["out_of_order"],
    }
    return counters


def _final_checks(
    sites: dict[str, _Site], counters: dict[str, Any], result: ScenarioResult, count: int
) -> None:
    """Check that the signs the counters allow are decided.

    On a long run every DER with counters that the site model exercises (PV, battery, meter) must
    be decided by the end; on a short one at least one of the legacy wire's inversions.
    """
    inversions = 0
    for source, site in sites.items():
        signs = counters[source]["signs"]
        for kind in ("pv", "battery", "meter"):
            der = site.feed.model.der_ids[kind]
            status = signs.get(der, {}).get("status")
            if status == "decided" and site.oracle.truth[der] < 0:
                inversions += 1
            result.check(
                status == "decided" or count < LONG_RUN,
                f"{source}: the {kind}'s sign is not decided by the end ({status})",
            )
    result.check(inversions > 0, "the legacy wire's inverted signs were never decided")


def _summarise(
    result: ScenarioResult,
    tally: _Tally,
    counters: dict[str, Any],
    sites: dict[str, _Site],
    ainsite: AinsiteOracle,
    errors: list[str],
    published: int,
    setup: FuzzSetup,
) -> None:
    """Fill the row and its notes: inputs by source and kind, counters, decisions, examples."""
    sent = sum(tally.sent.values())
    repeats = sum(count for (_, kind), count in tally.sent.items() if kind in REPEAT_KINDS)
    oracles: dict[str, Any] = {source: site.oracle for source, site in sites.items()}
    oracles[AINSITE] = ainsite
    result.sent = sent
    result.recorded = sum(counters[source]["accepted"] for source in SOURCES)
    result.lost = tally.lost
    result.duplicates_delivered = repeats
    # Readings not newer than their DER's last one that the integration applied all the same.
    result.duplicates_applied = sum(
        max(0, oracles[source].stale - counters[source]["stale"]) for source in SOURCES
    )
    result.wrong = tally.wrong
    result.backwards = tally.backwards
    result.errors_logged = len(errors)
    for source in SOURCES:
        oracle = oracles[source]
        count = counters[source]
        rejected = sum(count["rejected"].values())
        result.check(
            count["accepted"] == oracle.accepted and rejected == oracle.rejected,
            f"{source}: the integration counted {count['accepted']} accepted / {rejected} rejected,"
            f" the oracle {oracle.accepted} / {oracle.rejected}",
        )
        result.check(
            count["stale"] == oracle.stale,
            f"{source}: the integration dropped {count['stale']} readings as not newer, the oracle"
            f" {oracle.stale}",
        )
        error_rejections = count["rejected"].get("error", 0)
        result.check(
            error_rejections == 0, f"{source}: {error_rejections} inputs raised inside the parser"
        )
        result.errors_logged += error_rejections
    result.check(tally.wrong_decisions == 0, f"{tally.wrong_decisions} wrong sign decisions")
    result.check(not tally.stalled, f"stopped after {sent} inputs: an input never arrived")
    result.check_targets()

    # The notes: what was sent, by kind and source.
    kinds = sorted({kind for _, kind in tally.sent}, key=lambda kind: (kind != VALID, kind))
    width = max(len(kind) for kind in kinds)
    header = f"{'input kind':<{width}} " + " ".join(f"{source:>19}" for source in SOURCES)
    notes = [header]
    notes.extend(
        f"{kind:<{width}} " + " ".join(f"{tally.sent[(source, kind)]:>19}" for source in SOURCES)
        for kind in kinds
    )
    notes.append(
        f"{'total':<{width}} "
        + " ".join(
            f"{sum(c for (s, _), c in tally.sent.items() if s == source):>19}" for source in SOURCES
        )
    )
    for source in SOURCES:
        count = counters[source]
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(count["rejected"].items()))
        notes.append(
            f"{source}: accepted {count['accepted']} (oracle {oracles[source].accepted}),"
            f" rejected {sum(count['rejected'].values())} (oracle {oracles[source].rejected}:"
            f" {reasons}), dropped as not newer {count['stale']} (oracle {oracles[source].stale})"
        )
    for source, site in sites.items():
        signs = counters[source]["signs"]
        decided = []
        for kind, der in site.feed.model.der_ids.items():
            info = signs.get(der, {})
            truth = site.oracle.truth.get(der, 1)
            observations = info.get("observations") or {}
            seen = "/".join(str(observations.get(side, 0)) for side in ("documented", "inverted"))
            decided.append(
                f"{kind} {info.get('status', '-')}"
                + (f" {info.get('evidence_decision')}" if info.get("status") == "decided" else "")
                + (f" ({seen})" if observations else "")
                + (" [wire inverted]" if truth < 0 else "")
            )
        notes.append(f"{source} signs (observations documented/inverted): " + ", ".join(decided))
    rate = sent / result.duration_s if result.duration_s else 0.0
    notes.append(
        f"{tally.batches} batches of up to {setup.batch} inputs; {published} MQTT messages;"
        f" {rate:.0f} inputs/s; checking took {tally.check_s:.1f} s of {result.duration_s:.1f} s"
    )
    notes.append(
        f"checked: {tally.compared} entity states against the oracle at the ends of batches,"
        f" {tally.written} states written during batches against what the inputs allow"
    )
    notes.append(
        f"wrong states {tally.wrong}, wrong sign decisions {tally.wrong_decisions}, totals"
        f" backwards {tally.backwards}, lost {tally.lost}, errors or tracebacks logged {len(errors)}"
    )
    notes.extend(f"stalled: {note}" for note in tally.stall_notes)
    notes.extend(f"sign: {problem}" for problem in tally.sign_problems[:MAX_EXAMPLES])
    notes.extend(f"wrong: {example}" for example in tally.examples)
    notes.extend(f"log: {line}" for line in errors[:MAX_EXAMPLES])
    result.notes.extend(notes)
