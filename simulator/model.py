"""A physically consistent model of one site.

PV and a battery on a hybrid inverter, a three-phase meter and a bidirectional (V2X) EV charger.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import hashlib
import math
import random
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .novacore_server import NovacoreServer

MAX_SUBSTEP_S = 10.0
SUNRISE_H = 6.0
SUNSET_H = 20.0
NOMINAL_V = 230.0
NOMINAL_HZ = 50.0

# (name, power W, duration s) of the appliances that switch on now and then.
_APPLIANCES: tuple[tuple[str, float, float], ...] = (
    ("kettle", 2000.0, 180.0),
    ("microwave", 1100.0, 300.0),
    ("hair_dryer", 1500.0, 480.0),
    ("oven", 2400.0, 2400.0),
    ("dishwasher", 1200.0, 3600.0),
    ("washing_machine", 700.0, 5400.0),
    ("vacuum", 900.0, 900.0),
)
# Relative activity of the household per hour of the day.
_ACTIVITY = (
    0.05, 0.02, 0.02, 0.02, 0.02, 0.1, 0.5, 1.2, 1.0, 0.6, 0.5, 0.6,
    0.8, 0.6, 0.5, 0.5, 0.8, 1.3, 1.5, 1.3, 1.0, 0.7, 0.4, 0.15,
)  # fmt: skip
_EVENTS_PER_ACTIVE_HOUR = 1.5
_BASE_LOAD_SHARE = (0.4, 0.35, 0.25)
INVERTER_EFFICIENCY = 0.97
# EV charger: the car comes home between 17 and 19 h, leaves between 6:30 and 8:30; on some
# evenings it feeds the grid during the peak (18 to 21 h) while it has charge to spare.
EV_PLUG_IN_HOURS = (17.0, 19.0)
EV_UNPLUG_HOURS = (6.5, 8.5)
EV_PEAK_HOURS = (18.0, 21.0)
EV_V2G_PROBABILITY = 0.5
EV_TARGET_SOC = 0.8
EV_V2G_MIN_SOC = 0.45
EV_MIN_POWER = 1380.0
EV_EFFICIENCY = 0.95


def _r(value: float, digits: int) -> float:
    """Round, never giving -0.0."""
    return round(value, digits) + 0.0


def _ou(value: float, process: tuple[float, float, float], dt: float, rng: random.Random) -> float:
    """Advance an Ornstein-Uhlenbeck process (mean, std, tau) by dt seconds, exactly."""
    mean, std, tau = process
    decay = math.exp(-dt / tau)
    return mean + (value - mean) * decay + std * math.sqrt(1 - decay * decay) * rng.gauss()


@dataclass(slots=True)
class _Running:
    """An appliance that is on."""

    phase: int
    power: float
    remaining_s: float


class SiteModel:
    """One site advanced in simulated time, read as Novacore telemetry payloads."""

    def __init__(
        self,
        site_id: str = "sit-demo",
        name: str = "Demo Home",
        speed: float = 1.0,
        seed: int | None = None,
        *,
        start: datetime | None = None,
        clock: Callable[[], float] = time.time,
        pv_rated_power: float = 10000.0,
        battery_capacity_kwh: float = 10.0,
        battery_max_power: float = 5000.0,
        ev_capacity_kwh: float = 75.0,
        ev_max_power: float = 11000.0,
    ) -> None:
        """Create a model; `speed` is simulated seconds per real second."""
        self.site_id = site_id
        self.name = name
        self.speed = speed
        # The day curve follows the wall-clock hour of sim_time in its own time zone.
        if start is None:
            start = datetime.now(UTC).astimezone()
        elif start.tzinfo is None:
            start = start.astimezone()
        self.sim_time = start
        self._clock = clock
        self._rng = random.Random(seed)
        suffix = site_id.removeprefix("sit-")
        digest = hashlib.sha256(site_id.encode()).hexdigest()
        self.inverter_device_id = f"dev-{suffix}-inv"
        self.meter_device_id = f"dev-{suffix}-mtr"
        self.pv_der_id = f"der-{suffix}-pv"
        self.battery_der_id = f"der-{suffix}-bat"
        self.meter_der_id = f"der-{suffix}-mtr"
        self.inverter_der_id = f"der-{suffix}-inv"
        self.charger_device_id = f"dev-{suffix}-evc"
        self.charger_der_id = f"der-{suffix}-evc"
        self._inverter_serial = f"SN{int(digest[:8], 16) % 10**8:08d}"
        self._meter_serial = f"KM{int(digest[8:16], 16) % 10**8:08d}"
        self._charger_serial = f"EV{int(digest[16:24], 16) % 10**8:08d}"

        # PV: two strings, east-ish and west-ish, on one inverter.
        self.pv_rated_power = pv_rated_power
        self._strings = (
            (
                0.56 * pv_rated_power * 1.05,
                11.0,
                395.0,
            ),  # (peak DC W, peak hour, MPP voltage)
            (0.44 * pv_rated_power * 1.05, 14.5, 365.0),
        )
        self._clearness = 0.8
        self.pv_production = 0.0
        self._mppt: list[tuple[float, float]] = [(0.0, 0.0), (0.0, 0.0)]
        self.total_generation_Wh = 150000.0

        # Household load.
        self._running: list[_Running] = []
        self._base_noise = 0.0
        self.load_power = 0.0
        self._phase_load = [0.0, 0.0, 0.0]

        # Battery.
        self.battery_capacity_wh = battery_capacity_kwh * 1000.0
        self.battery_max_power = battery_max_power
        self.min_soc = 0.1
        self._efficiency = 0.95
        self.soc = 0.5
        self.soh = 0.97
        self.battery_power = 0.0
        self._max_charge = battery_max_power
        self._max_discharge = battery_max_power
        self._battery_offset = 0.0
        self._battery_temp = 21.0
        self.total_charge_Wh = 85000.0
        self.total_discharge_Wh = 78000.0

        # Grid.
        self.grid_power = 0.0
        self._hz = NOMINAL_HZ
        self._voltage_noise = [0.0, 0.0, 0.0]
        self.total_import_Wh = 42000.0
        self.total_export_Wh = 31000.0

        # Hybrid inverter: the AC side of PV and battery.
        self.inverter_rated_power = pv_rated_power
        self.inverter_power = 0.0
        """AC output (positive: to the house and grid)."""
        self._reactive = 0.0
        self._heatsink = 30.0

        # EV charger (V2X) and the car behind it.
        self.ev_capacity_wh = ev_capacity_kwh * 1000.0
        self.ev_max_power = ev_max_power
        self.ev_soc = 0.55
        self.ev_power = 0.0
        """AC power at the charger (positive: charging the car; negative: to the grid)."""
        self.ev_plugged = False
        self.ev_status = "unavailable"
        self.ev_session_charge_Wh = 0.0
        self.ev_session_discharge_Wh = 0.0
        self.ev_total_charge_Wh = 1_250_000.0
        self.ev_total_discharge_Wh = 80_000.0
        self._ev_v2g_tonight = False
        hour = self._hour()
        if EV_UNPLUG_HOURS[1] <= hour < EV_PLUG_IN_HOURS[0]:
            self._ev_next = self._next_time(*EV_PLUG_IN_HOURS)
        else:  # evening or night: the car is home
            self._ev_plug_in()
            self._ev_next = self._next_time(*EV_UNPLUG_HOURS)

        self._advance(0.0)

    # ------------------------------------------------------------ public API

    @property
    def der_ids(self) -> dict[str, str]:
        """Return the DER id of each telemetry type."""
        return {
            "pv": self.pv_der_id,
            "battery": self.battery_der_id,
            "meter": self.meter_der_id,
            "inverter": self.inverter_der_id,
            "v2x_charger": self.charger_der_id,
        }

    def devices(self) -> list[dict[str, Any]]:
        """Return the devices as GET /sites/{site_id}/devices lists them."""
        return [
            {
                "id": self.inverter_device_id,
                "name": "Sungrow Inverter",
                "type": "inverter",
                "state": "active",
                "hardware_id": self._inverter_serial,
                "ders": [
                    {"id": self.pv_der_id, "name": "pv-array", "type": "solar"},
                    {"id": self.battery_der_id, "name": "battery_1", "type": "battery"},
                    {"id": self.inverter_der_id, "name": "inverter", "type": "inverter"},
                ],
            },
            {
                "id": self.meter_device_id,
                "name": "Kamstrup Meter",
                "type": "meter",
                "state": "active",
                "hardware_id": self._meter_serial,
                "ders": [{"id": self.meter_der_id, "name": "grid-meter", "type": "meter"}],
            },
            {
                "id": self.charger_device_id,
                "name": "Ambibox Charger",
                "type": "charger",
                "state": "active",
                "hardware_id": self._charger_serial,
                "ders": [{"id": self.charger_der_id, "name": "ev-charger", "type": "v2x_charger"}],
            },
        ]

    def step(self, real_dt_seconds: float) -> list[dict[str, Any]]:
        """Advance speed * real_dt_seconds of simulated time; return a reading per DER."""
        remaining = max(0.0, real_dt_seconds) * self.speed
        while remaining > 1e-9:
            dt = min(MAX_SUBSTEP_S, remaining)
            self._advance(dt)
            remaining -= dt
        return self.readings()

    def past_readings(self, end: datetime, every: float) -> Iterator[list[dict[str, Any]]]:
        """Advance simulated time to `end` in steps of `every` simulated seconds, yielding readings.

        For a backfill: the model starts in the past (`start`), and each step's readings carry
        the simulated time as their timestamp, beginning with the readings at the start. Once
        `end` is reached, `step` and `readings` go on with the real clock's timestamps.
        """
        yield self.readings(self._sim_timestamp())
        while (left := (end - self.sim_time).total_seconds()) > 0.001:
            remaining = min(every, left)
            while remaining > 1e-9:
                dt = min(MAX_SUBSTEP_S, remaining)
                self._advance(dt)
                remaining -= dt
            yield self.readings(self._sim_timestamp())

    def _sim_timestamp(self) -> int:
        return round(self.sim_time.timestamp() * 1000)

    def readings(self, timestamp: int | None = None) -> list[dict[str, Any]]:
        """Return the current reading of each DER without advancing (documented wire).

        In this order: PV, battery, meter, inverter, EV charger. `timestamp` (epoch ms) defaults
        to the real clock: sped-up simulated time never stamps a reading in the future.
        """
        if timestamp is None:
            timestamp = int(self._clock() * 1000)
        return [
            self._pv_reading(timestamp),
            self._battery_reading(timestamp),
            self._meter_reading(timestamp),
            self._inverter_reading(timestamp),
            self._charger_reading(timestamp),
        ]

    # ------------------------------------------------------------ physics

    def _hour(self) -> float:
        """Return the local hour of simulated time, with its fraction."""
        return self.sim_time.hour + self.sim_time.minute / 60 + self.sim_time.second / 3600

    def _next_time(self, earliest: float, latest: float) -> datetime:
        """Return a random time between two hours of the day, the next one after now."""
        midnight = self.sim_time.replace(hour=0, minute=0, second=0, microsecond=0)
        moment = midnight + timedelta(hours=self._rng.uniform(earliest, latest))
        return moment if moment > self.sim_time else moment + timedelta(days=1)

    def _ev_plug_in(self) -> None:
        """The car comes home: a new session, the charge the day's driving left."""
        self.ev_plugged = True
        self.ev_soc = self._rng.uniform(0.4, 0.75)
        self.ev_session_charge_Wh = 0.0
        self.ev_session_discharge_Wh = 0.0
        self._ev_v2g_tonight = self._rng.random() < EV_V2G_PROBABILITY

    def _advance_ev(self, dt: float, hour: float) -> None:
        """Plug in, feed the evening peak now and then, charge to the target, leave."""
        if self.sim_time >= self._ev_next:
            if self.ev_plugged:
                self.ev_plugged = False
                self._ev_next = self._next_time(*EV_PLUG_IN_HOURS)
            else:
                self._ev_plug_in()
                self._ev_next = self._next_time(*EV_UNPLUG_HOURS)
        power = 0.0
        if self.ev_plugged:
            soc = self.ev_soc
            if (
                self._ev_v2g_tonight
                and EV_PEAK_HOURS[0] <= hour < EV_PEAK_HOURS[1]
                and soc > EV_V2G_MIN_SOC
            ):
                power = -min(self.ev_max_power * 0.9, (soc - EV_V2G_MIN_SOC) / 0.01 * 1000.0)
            elif soc < EV_TARGET_SOC and not (
                self._ev_v2g_tonight and EV_PEAK_HOURS[0] <= hour < EV_PEAK_HOURS[1]
            ):
                power = self.ev_max_power * min(1.0, (EV_TARGET_SOC - soc) / 0.05)
            if abs(power) < EV_MIN_POWER:
                power = 0.0
        self.ev_power = power
        energy = power * dt / 3600
        if energy > 0:
            self.ev_soc += energy * EV_EFFICIENCY / self.ev_capacity_wh
            self.ev_session_charge_Wh += energy
            self.ev_total_charge_Wh += energy
        elif energy < 0:
            self.ev_soc += energy / EV_EFFICIENCY / self.ev_capacity_wh
            self.ev_session_discharge_Wh -= energy
            self.ev_total_discharge_Wh -= energy
        self.ev_soc = min(1.0, max(0.0, self.ev_soc))
        if not self.ev_plugged:
            self.ev_status = "unavailable"
        elif power > 0:
            self.ev_status = "charging"
        elif power < 0:
            self.ev_status = "discharging"
        else:
            self.ev_status = "sleeping"

    def _advance(self, dt: float) -> None:
        """Move simulated time by dt seconds and integrate energy over it."""
        rng = self._rng
        self.sim_time += timedelta(seconds=dt)
        hour = self._hour()

        # PV.
        self._clearness = min(1.0, max(0.1, _ou(self._clearness, (0.8, 0.15, 1200.0), dt, rng)))
        sun = 0.0
        if SUNRISE_H < hour < SUNSET_H:
            sun = math.sin(math.pi * (hour - SUNRISE_H) / (SUNSET_H - SUNRISE_H)) ** 1.3
        dc_total = 0.0
        mppt: list[tuple[float, float]] = []
        for peak_w, peak_hour, mpp_v in self._strings:
            orientation = 0.8 + 0.2 * math.cos(2 * math.pi * (hour - peak_hour) / 24)
            dc = peak_w * sun * orientation * self._clearness * (1 + 0.01 * rng.gauss())
            if dc > 5.0:
                volts = mpp_v * (0.88 + 0.12 * min(1.0, sun * 4) ** 0.3) + rng.gauss() * 1.5
                mppt.append((volts, -dc / volts))
                dc_total += dc
            else:
                mppt.append((0.0, 0.0))
        self._mppt = mppt
        self.pv_production = min(self.pv_rated_power, dc_total * 0.97)

        # Load.
        activity = _ACTIVITY[int(hour) % 24]
        probability = 1 - math.exp(-activity * _EVENTS_PER_ACTIVE_HOUR * dt / 3600)
        if dt > 0 and rng.random() < probability:
            _, power, duration = rng.choice(_APPLIANCES)
            self._running.append(
                _Running(
                    rng.randrange(3),
                    power * rng.uniform(0.9, 1.1),
                    duration * rng.uniform(0.7, 1.3),
                )
            )
        for running in self._running:
            running.remaining_s -= dt
        self._running = [r for r in self._running if r.remaining_s > 0]
        self._base_noise = _ou(self._base_noise, (0.0, 25.0, 120.0), dt, rng)
        fridge = 110.0 if (self.sim_time.minute // 15) % 3 == 0 else 0.0
        base = 150.0 + 250.0 * min(activity, 1.0) + fridge + self._base_noise
        phase_load = [max(20.0, base * share) for share in _BASE_LOAD_SHARE]
        for running in self._running:
            phase_load[running.phase] += running.power
        self._phase_load = phase_load
        self.load_power = sum(phase_load)

        # Battery: self-consumption, within power, SoC and taper limits.
        self._battery_offset = _ou(self._battery_offset, (0.0, 15.0, 60.0), dt, rng)
        target = self.pv_production - self.load_power + self._battery_offset
        max_charge = self.battery_max_power * min(1.0, max(0.0, (1.0 - self.soc) / 0.1))
        max_discharge = self.battery_max_power * min(
            1.0, max(0.0, (self.soc - self.min_soc) / 0.05)
        )
        self._max_charge, self._max_discharge = max_charge, max_discharge
        self.battery_power = min(max_charge, max(-max_discharge, target))
        if abs(self.battery_power) < 5.0:
            self.battery_power = 0.0
        energy = self.battery_power * dt / 3600
        if energy >= 0:
            self.soc += energy * self._efficiency / self.battery_capacity_wh
            self.total_charge_Wh += energy
        else:
            self.soc += energy / self._efficiency / self.battery_capacity_wh
            self.total_discharge_Wh -= energy
        self.soc = min(1.0, max(0.0, self.soc))
        self.soh = max(0.5, self.soh - abs(energy) / self.battery_capacity_wh * 2e-5)
        heat_target = 20.0 + 0.0015 * abs(self.battery_power)
        self._battery_temp += (heat_target - self._battery_temp) * (1 - math.exp(-dt / 1800))

        # The EV charger; the battery does not feed it (a common setting).
        self._advance_ev(dt, hour)

        # Inverter: AC output is PV minus what goes into the battery.
        self.inverter_power = self.pv_production - self.battery_power
        self._reactive = _ou(self._reactive, (0.0, 60.0, 300.0), dt, rng)
        heat_target = 28.0 + 0.0025 * abs(self.inverter_power)
        self._heatsink += (heat_target - self._heatsink) * (1 - math.exp(-dt / 600))

        # Grid.
        self.grid_power = self.load_power - self.pv_production + self.battery_power + self.ev_power
        self.total_generation_Wh += self.pv_production * dt / 3600
        if self.grid_power >= 0:
            self.total_import_Wh += self.grid_power * dt / 3600
        else:
            self.total_export_Wh -= self.grid_power * dt / 3600
        self._hz = _ou(self._hz, (NOMINAL_HZ, 0.02, 30.0), dt, rng)
        self._voltage_noise = [_ou(v, (0.0, 0.8, 300.0), dt, rng) for v in self._voltage_noise]

    # ------------------------------------------------------------ readings

    @property
    def pv_power(self) -> float:
        """Return PV power with Sourceful's sign (negative while producing)."""
        return -self.pv_production

    def _pv_reading(self, timestamp: int) -> dict[str, Any]:
        (v1, a1), (v2, a2) = self._mppt
        return {
            "type": "pv",
            "make": "Sungrow",
            "der_id": self.pv_der_id,
            "W": _r(self.pv_power, 1),
            "rated_power_W": int(self.pv_rated_power)
            if self.pv_rated_power.is_integer()
            else self.pv_rated_power,
            "installed_power_W": round(self.pv_rated_power * 1.05),
            "mppt1_V": _r(v1, 1),
            "mppt1_A": _r(a1, 2),
            "mppt1_W": _r(v1 * a1, 1),
            "mppt2_V": _r(v2, 1),
            "mppt2_A": _r(a2, 2),
            "mppt2_W": _r(v2 * a2, 1),
            "lower_limit_W": _r(-self.pv_rated_power, 1),
            "total_generation_Wh": _r(self.total_generation_Wh, 1),
            "timestamp": timestamp,
            "read_time_ms": self._rng.randint(20, 80),
        }

    def _battery_reading(self, timestamp: int) -> dict[str, Any]:
        capacity = self.battery_capacity_wh
        volts = 48.0 + 6.4 * self.soc
        volts += (self.battery_power / volts) * 0.01  # internal resistance
        return {
            "type": "battery",
            "make": "BYD",
            "der_id": self.battery_der_id,
            "W": _r(self.battery_power, 1),
            "SoC_nom_fract": _r(self.soc, 4),
            "V": _r(volts, 2),
            "A": _r(self.battery_power / volts, 2),
            "SoH_fract": _r(self.soh, 4),
            "temperature_C": _r(self._battery_temp, 1),
            "upper_limit_W": _r(self._max_charge, 1),
            "lower_limit_W": _r(-self._max_discharge, 1),
            "available_charge_Wh": _r((1.0 - self.soc) * capacity, 1),
            "available_discharge_Wh": _r(max(0.0, self.soc - self.min_soc) * capacity, 1),
            "total_charge_Wh": _r(self.total_charge_Wh, 1),
            "total_discharge_Wh": _r(self.total_discharge_Wh, 1),
            "rated_power_W": round(self.battery_max_power),
            "capacity_kWh": _r(capacity / 1000.0, 2),
            "min_soc_fract": self.min_soc,
            "max_soc_fract": 1.0,
            "timestamp": timestamp,
        }

    def _meter_reading(self, timestamp: int) -> dict[str, Any]:
        total = _r(self.grid_power, 1)
        inverter_share = (self.battery_power - self.pv_production + self.ev_power) / 3
        phase_w = [load + inverter_share for load in self._phase_load]
        rounded = [_r(phase_w[0], 1), _r(phase_w[1], 1)]
        rounded.append(_r(total - rounded[0] - rounded[1], 1))
        reading: dict[str, Any] = {
            "type": "meter",
            "make": "Kamstrup",
            "der_id": self.meter_der_id,
            "W": total,
            "Hz": _r(self._hz, 3),
        }
        for index, (watts, offset) in enumerate(zip(rounded, (0.0, 1.0, -1.0), strict=True)):
            volts = NOMINAL_V + offset + self._voltage_noise[index] - 0.0004 * watts
            reading[f"L{index + 1}_V"] = _r(volts, 1)
            reading[f"L{index + 1}_A"] = _r(watts / volts, 2)
            reading[f"L{index + 1}_W"] = watts
        reading["total_import_Wh"] = _r(self.total_import_Wh, 1)
        reading["total_export_Wh"] = _r(self.total_export_Wh, 1)
        reading["timestamp"] = timestamp
        return reading

    def _phase_volts(self, index: int) -> float:
        return NOMINAL_V + (0.0, 1.0, -1.0)[index] + self._voltage_noise[index]

    def _inverter_reading(self, timestamp: int) -> dict[str, Any]:
        """The AC stage; its wire sign is negative for output, like PV (see README)."""
        ac = self.inverter_power
        dc = ac / INVERTER_EFFICIENCY if ac >= 0 else ac * INVERTER_EFFICIENCY
        dc_volts = 600.0 + 20.0 * math.tanh(self._reactive / 100.0)
        watts = _r(-ac, 1)
        reading: dict[str, Any] = {
            "type": "inverter",
            "make": "Sungrow",
            "der_id": self.inverter_der_id,
            "W": watts,
            "VA": _r(math.hypot(ac, self._reactive), 1),
            "VAR": _r(self._reactive, 1),
            "Hz": _r(self._hz, 3),
            "dc_W": _r(-dc, 1),
            "dc_V": _r(dc_volts, 1),
            "dc_A": _r(-dc / dc_volts, 2),
            "heatsink_C": _r(self._heatsink, 1),
        }
        for index in range(3):
            volts = self._phase_volts(index)
            reading[f"L{index + 1}_V"] = _r(volts, 1)
            reading[f"L{index + 1}_A"] = _r(-ac / 3 / volts, 2)
            reading[f"L{index + 1}_W"] = _r(-ac / 3, 1)
        reading["rated_power_W"] = round(self.inverter_rated_power)
        reading["rated_power_VA"] = round(self.inverter_rated_power)
        reading["phases"] = 3
        reading["timestamp"] = timestamp
        return reading

    def _charger_reading(self, timestamp: int) -> dict[str, Any]:
        """The V2X charger: positive while charging the car, negative while feeding the grid."""
        power = self.ev_power
        volts = sum(self._phase_volts(index) for index in range(3)) / 3
        dc = power * EV_EFFICIENCY if power >= 0 else power / EV_EFFICIENCY
        reading: dict[str, Any] = {
            "type": "v2x_charger",
            "make": "Ambibox",
            "der_id": self.charger_der_id,
            "W": _r(power, 1),
            "A": _r(power / volts / 3, 2),
            "V": _r(volts, 1),
            "Hz": _r(self._hz, 3),
        }
        for index in range(3):
            phase_volts = self._phase_volts(index)
            reading[f"L{index + 1}_V"] = _r(phase_volts, 1)
            reading[f"L{index + 1}_A"] = _r(power / 3 / phase_volts, 2)
            reading[f"L{index + 1}_W"] = _r(power / 3, 1)
        reading["dc_W"] = _r(dc, 1)
        reading["status"] = self.ev_status
        reading["plug_connected"] = self.ev_plugged
        reading["protocol"] = "ISO15118-20"
        reading["control_mode"] = "dynamic"
        if self.ev_plugged:
            capacity = self.ev_capacity_wh
            pack_volts = 350.0 + 60.0 * self.ev_soc
            reading["dc_V"] = _r(pack_volts, 1)
            reading["dc_A"] = _r(dc / pack_volts, 2)
            reading["vehicle_soc_fract"] = _r(self.ev_soc, 4)
            reading["ev_target_energy_req_Wh"] = _r(
                max(0.0, EV_TARGET_SOC - self.ev_soc) * capacity, 1
            )
            reading["ev_max_energy_req_Wh"] = _r((1.0 - self.ev_soc) * capacity, 1)
            reading["ev_min_energy_req_Wh"] = _r((self.ev_soc - EV_V2G_MIN_SOC) * capacity, 1)
        reading["session_charge_Wh"] = _r(self.ev_session_charge_Wh, 1)
        reading["session_discharge_Wh"] = _r(self.ev_session_discharge_Wh, 1)
        reading["total_charge_Wh"] = _r(self.ev_total_charge_Wh, 1)
        reading["total_discharge_Wh"] = _r(self.ev_total_discharge_Wh, 1)
        reading["upper_limit_W"] = [EV_MIN_POWER, 0, self.ev_max_power]
        reading["lower_limit_W"] = [-self.ev_max_power * 0.9, 0, -EV_MIN_POWER]
        reading["max_charge_power_W"] = round(self.ev_max_power)
        reading["max_discharge_power_W"] = round(self.ev_max_power * 0.9)
        reading["capacity_Wh"] = round(self.ev_capacity_wh)
        reading["phases"] = 3
        reading["timestamp"] = timestamp
        return reading


async def run_site(server: NovacoreServer, model: SiteModel, interval: float = 1.0) -> None:
    """Push the model's readings to the server every interval seconds, forever."""
    if not server.has_site(model.site_id):
        server.add_site(model.site_id, model.name, model.devices())
    loop = asyncio.get_running_loop()
    last = loop.time()
    while True:
        now = loop.time()
        readings = model.step(now - last)
        last = now
        for reading in readings:
            if server.has_site(model.site_id):
                await server.push(model.site_id, reading)
        await asyncio.sleep(interval)
