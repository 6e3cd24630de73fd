"""The whole system: a day of a site with 5 DERs and 10 Ainsite meters, with random faults.

The rule of its final check: every total the integration held at the end equals the source's.
The DERs go stale a minute after the last reading (by design): a total that went unavailable
because the scenario stopped sending is checked by the last value it showed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import math
import random
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry

from simulator.model import SiteModel
from simulator.wait import wait_for

from .harness import (
    DELIVERY_TIMEOUT,
    expect,
    final_value,
    record_deliveries,
    record_states,
    tune_ainsite,
)
from .mqtt import MqttSetup, applied_twice, delivered, mismatched_totals, total_entities
from .report import ScenarioResult
from .sse import SseSetup, prepare

# Half-open is left to its own scenario: the simulator drops events pushed while it is silent.
SSE_FAULTS = ("sse_reset", "sse_503", "sse_429", "sse_token_expiry")
MQTT_FAULTS = ("mqtt_broker_restart", "mqtt_duplicates", "mqtt_out_of_order", "mqtt_ha_restart")


@dataclass(frozen=True, slots=True)
class SystemSetup:
    """Both peers."""

    sse: SseSetup
    mqtt: MqttSetup

    @property
    def hours(self) -> float:
        """Simulated hours."""
        return 24.0 if self.sse.full else 3.0


def _unit_factor(unit: str | None) -> float:
    return {"Wh": 1.0, "kWh": 1000.0, "MWh": 1e6}.get(unit or "", math.nan)


async def run(setup: SystemSetup) -> ScenarioResult:
    """Simulate the day as fast as the loop allows; inject a fault every 10-40 simulated min."""
    started = time.monotonic()
    sse, mq = setup.sse, setup.mqtt
    hass, server = sse.hass, sse.server
    hours = setup.hours
    result = ScenarioResult(
        "system_24h" if sse.full else "system_3h",
        f"{hours:g} simulated hours: 5 DERs every 30 s, 10 meters every 5 min, random faults",
    )
    rng = random.Random(11)
    start = datetime.now(UTC) - timedelta(hours=hours, minutes=5)
    holder: dict[str, SiteModel] = {}
    model = SiteModel(
        sse.site_id,
        sse.site_name,
        seed=5,
        start=start,
        clock=lambda: holder["model"].sim_time.timestamp(),  # noqa: PLW0108 - set below
    )
    holder["model"] = model
    server.add_site(sse.site_id, sse.site_name, model.devices())
    server.auto_ids = True
    server.keepalive_interval = 0.25
    fleet = mq.fleet(10)
    fleet.clock = start.replace(microsecond=0)
    fleet.step = timedelta(minutes=5)
    publisher = mq.publisher()
    faults: Counter[str] = Counter()
    fault_log: list[tuple[float, str]] = []
    background: list[asyncio.Task[Any]] = []
    sent_sse: set[tuple[str, float]] = set()
    last_reading: dict[str, dict[str, Any]] = {}
    reset_meter = fleet.meters[0]
    with record_deliveries() as deliveries, record_states(hass) as log:
        nova = await prepare(sse)
        mqtt_entry: list[ConfigEntry[Any]] = [await mq.entry()]
        publisher.start()

        async def restart_entry() -> None:
            entry = mqtt_entry[0]
            assert await hass.config_entries.async_unload(entry.entry_id)
            await asyncio.sleep(0.5)
            assert await hass.config_entries.async_setup(entry.entry_id)
            tune_ainsite(entry, mq.initial, mq.cap)

        async def inject(kind: str) -> None:
            faults[kind] += 1
            fault_log.append((time.monotonic() - started, kind))
            if kind == "sse_reset":
                await server.cut_streams(sse.site_id, mid_event=True)
            elif kind == "sse_503":
                server.fail_stream(503, 3)
                await server.cut_streams(sse.site_id)
            elif kind == "sse_429":
                server.fail_stream(429, 1, retry_after=1)
                await server.cut_streams(sse.site_id)
            elif kind == "sse_token_expiry":
                server.drop_streams_on_expiry = True
                server.expire_tokens()
                server.drop_streams_on_expiry = False
            elif kind == "mqtt_broker_restart":
                background.append(
                    asyncio.ensure_future(hass.async_add_executor_job(mq.broker.restart))
                )
            elif kind == "mqtt_duplicates":
                last = [fleet.message(m, fleet.totals[m], fleet.clock) for m in fleet.meters]
                publisher.put(last * 5)
            elif kind == "mqtt_out_of_order":
                old = fleet.clock - fleet.step * 2
                publisher.put([fleet.message(m, 1.0, old) for m in fleet.meters])
            elif kind == "mqtt_ha_restart" and all(task.done() for task in background):
                background.append(asyncio.create_task(restart_entry()))

        step = timedelta(seconds=30)
        steps = int(hours * 3600 / step.total_seconds())
        next_fault = rng.uniform(10, 40) * 2
        reset_at = steps // 2
        throttled = 0.0
        delivered_keys: set[tuple[str, float]] = set()
        counted = [0]

        def behind() -> int:
            """Events pushed but not delivered yet (a replayed event counts once)."""
            new = deliveries.sse[counted[0] :]
            counted[0] += len(new)
            delivered_keys.update((r.der_id, r.timestamp) for _, r in new if r.der_id)
            return len(sent_sse) - len(delivered_keys)

        def undelivered_sse() -> set[tuple[str, float]]:
            """The events pushed and not delivered, read now."""
            behind()
            return sent_sse - delivered_keys

        for index in range(steps):
            # The server replays at most 1000 events after a reconnect; 1000 events are 2.8 hours
            # at this site's real rate but a few seconds here, so the source waits when the
            # client is that far behind instead of overrunning the window.
            if behind() > 900:
                pause = time.monotonic()
                await expect(
                    result,
                    wait_for(
                        lambda: behind() <= 300,
                        timeout=DELIVERY_TIMEOUT,
                        what=lambda: (
                            f"the SSE client within 300 events of the source ({behind()} behind)"
                        ),
                    ),
                )
                throttled += time.monotonic() - pause
            for reading in model.step(step.total_seconds()):
                last_reading[reading["der_id"]] = reading
                sent_sse.add((reading["der_id"], float(reading["timestamp"])))
                await server.push(sse.site_id, reading)
            if index % 10 == 9:
                if index >= reset_at and not faults["meter_reset"]:
                    fleet.totals[reset_meter] = 0.2
                    faults["meter_reset"] += 1
                publisher.put(fleet.cycle())
            if index >= next_fault:
                await inject(rng.choice(SSE_FAULTS + MQTT_FAULTS))
                next_fault = index + rng.uniform(10, 40) * 2
            await asyncio.sleep(0.01)
        sim_end = time.monotonic()
        await asyncio.gather(*background)
        await delivered(result, publisher, deliveries)
        await expect(
            result,
            wait_for(
                lambda: not undelivered_sse(),
                timeout=DELIVERY_TIMEOUT,
                what=lambda: (
                    f"{len(undelivered_sse())} SSE events delivered, e.g. "
                    f"{sorted(undelivered_sse())[:3]} (stream connected: "
                    f"{nova.runtime_data.stream.connected})"
                ),
            ),
        )
        settled = time.monotonic()
        await publisher.stop()
        await hass.async_block_till_done()

        # --- Ainsite: every reading reached the integration; totals equal the source's.
        sent = set(publisher.acked)
        delivered_mqtt = deliveries.mqtt_keys()
        lost_mqtt = len(sent - delivered_mqtt)
        entities = total_entities(hass, mq.customer_id, fleet.meters)
        wrong = mismatched_totals(hass, log, entities, fleet.totals)
        mqtt_totals = list(entities.values())

        # --- Novacore: every pushed event reached it; every total equals the model's.
        delivered_sse = {
            (reading.der_id, reading.timestamp) for _, reading in deliveries.sse if reading.der_id
        }
        lost_sse = len(sent_sse - delivered_sse)
        sse_totals = []
        coordinator = nova.runtime_data
        checked = stale = 0
        for der_id, reading in last_reading.items():
            group = coordinator.data[der_id]
            for field, binding in group.fields.items():
                point = None if binding is None else binding[0]
                if point is None or point.guard is None or point.entity is None:
                    continue
                if field.startswith("session_"):
                    # An EV charger's session counters restart with each session by design
                    # (tests/integration/test_novacore_der_types.py covers them); the other totals never go back.
                    continue
                sse_totals.append(point.entity.entity_id)
                source = float(reading[field])
                final = final_value(hass, log, point.entity.entity_id)
                checked += 1
                stale += final.stale
                if final.value is None or not math.isclose(
                    final.value * _unit_factor(final.unit), source, rel_tol=1e-9
                ):
                    wrong.append(f"{der_id} {field}: HA {final.value} {final.unit} != {source} Wh")

        result.sent = len(sent) + len(sent_sse)
        result.recorded = len(sent & delivered_mqtt) + len(sent_sse & delivered_sse)
        result.lost = lost_mqtt + lost_sse
        result.duplicates_delivered = len(deliveries.mqtt) - len(delivered_mqtt)
        result.duplicates_applied = applied_twice(log, mqtt_totals + sse_totals)
        moves = log.backwards(mqtt_totals + sse_totals)
        allowed = [move for move in moves if move[0] == entities.get(reset_meter)]
        result.backwards = len(moves) - min(1, len(allowed))
        result.wrong = len(wrong) + len(log.non_numeric)
        result.check(len(allowed) == 1, f"meter reset shown {len(allowed)} times, expected 1")
        if wrong:
            result.notes.append("wrong totals: " + "; ".join(wrong[:5]))
        for key in sorted(sent - delivered_mqtt)[:5]:
            acked = publisher.acked[key] - started
            result.notes.append(
                f"lost MQTT reading {key}: acknowledged by the broker {acked:.1f} s into the run;"
                f" faults at {', '.join(f'{kind}@{when:.1f}' for when, kind in fault_log)}"
            )
        result.notes.append(f"source waited {throttled:.1f} s for the SSE client to catch up")
        if moves:
            result.notes.append(f"decreases: {moves[:5]}")
        result.notes.append(
            f"{steps} steps ({len(sent_sse)} SSE events, {len(sent)} meter readings) in "
            f"{sim_end - started:.1f} s; faults: {dict(sorted(faults.items()))}"
        )
        result.notes.append(
            f"final totals equal the source's: {len(fleet.totals) + checked - len(wrong)}/"
            f"{len(fleet.totals) + checked} ({checked} Novacore, {len(fleet.totals)} Ainsite); "
            f"lost SSE {lost_sse}, lost MQTT {lost_mqtt}; all delivered {settled - sim_end:.1f} s"
            f" after the last push; {stale} Novacore totals had gone stale (unavailable) and"
            " were checked by the last value they showed"
        )
        result.notes.append(
            f"SSE: {coordinator.stream.stats.connects} connects; MQTT: "
            f"{mqtt_entry[0].runtime_data.connection.connects} connects after the last set-up, "
            f"{sum(faults[f] for f in MQTT_FAULTS)} MQTT faults; backoff cap {sse.cap} s"
        )
        assert await hass.config_entries.async_unload(nova.entry_id)
        assert await hass.config_entries.async_unload(mqtt_entry[0].entry_id)
    result.duration_s = time.monotonic() - started
    return result
