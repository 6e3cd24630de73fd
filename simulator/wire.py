"""The two wires a Novacore site may speak, as Sourceful's own sources show them.

- `documented`: Sourceful's API documentation and data models: flat readings with a DER id, type
  `pv`, epoch-millisecond timestamps, PV `W` negative while producing, battery `W` positive while
  charging, meter `W` positive while importing, EV charger `W` positive while charging the EV.
- `legacy`: what srcfl/ftw calls the Nova legacy wire, in the data models' complete shape: type
  `solar` (and `ev_port` for the charger), battery and meter signs inverted (battery `W` negative
  while charging, meter `W` negative while importing), RFC 3339 timestamps,
  `{type, device_sn, spec, state}` with no DER id, MPPTs as an `mppts` array.

The site model produces documented readings; `to_legacy` turns one into the legacy wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
import re
from typing import Any, Final

WIRES: Final = ("documented", "legacy")
DOCUMENTED: Final = "documented"
LEGACY: Final = "legacy"

_LEGACY_TYPES: Final = {"pv": "solar", "v2x_charger": "ev_port"}
_SPEC_FIELDS: Final[dict[str, frozenset[str]]] = {
    "pv": frozenset({"rated_power_W", "installed_power_W"}),
    "battery": frozenset({"rated_power_W", "capacity_kWh", "min_soc_fract", "max_soc_fract"}),
    "inverter": frozenset({"rated_power_W", "rated_power_VA", "phases"}),
    "v2x_charger": frozenset(
        {
            "max_charge_power_W",
            "max_discharge_power_W",
            "min_charge_power_W",
            "min_discharge_power_W",
            "capacity_Wh",
            "phases",
        }
    ),
}
_INVERTED: Final = {
    "battery": re.compile(r"^(W|A)$"),
    "meter": re.compile(r"^(W|L\d+_[AW])$"),
}
"""Fields whose sign the legacy wire inverts (its battery and meter count the other way)."""
_MPPT = re.compile(r"^mppt(\d+)_(V|A|W)$")


def rfc3339(milliseconds: float) -> str:
    """Format epoch milliseconds as an RFC 3339 string in UTC with milliseconds."""
    moment = datetime.fromtimestamp(milliseconds / 1000.0, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_legacy(reading: Mapping[str, Any], device_sn: str | None) -> dict[str, Any]:
    """Turn a documented reading into the legacy wire (the DER found by `device_sn`)."""
    kind = str(reading.get("type"))
    spec_fields = _SPEC_FIELDS.get(kind, frozenset())
    inverted = _INVERTED.get(kind)
    spec: dict[str, Any] = {"enabled": True}
    state: dict[str, Any] = {}
    mppts: dict[int, dict[str, Any]] = {}
    for key, value in reading.items():
        if key in ("type", "der_id", "make"):
            continue
        if key == "timestamp" and isinstance(value, int | float):
            state[key] = rfc3339(value)
        elif key in spec_fields:
            spec[key] = value
        elif (match := _MPPT.match(key)) is not None:
            mppts.setdefault(int(match.group(1)), {})[match.group(2)] = value
        elif inverted is not None and inverted.match(key) and isinstance(value, int | float):
            state[key] = 0.0 - value
        else:
            state[key] = value
    if kind == "battery":
        # Its limits trade places too: the upper one is now the discharge limit.
        upper, lower = reading.get("upper_limit_W"), reading.get("lower_limit_W")
        for key, other in (("upper_limit_W", lower), ("lower_limit_W", upper)):
            if isinstance(other, int | float):
                state[key] = 0.0 - other
            else:
                state.pop(key, None)
    if mppts:
        state["mppts"] = [mppts.get(n, {}) for n in range(1, max(mppts) + 1)]
    if kind == "v2x_charger":
        spec["bidirectional"] = True
    result: dict[str, Any] = {"type": _LEGACY_TYPES.get(kind, kind)}
    if device_sn is not None:
        result["device_sn"] = device_sn
    elif "der_id" in reading:
        result["der_id"] = reading["der_id"]
    if "make" in reading:
        result["make"] = reading["make"]
    result["spec"] = spec
    result["state"] = state
    return result


def device_sn_of(devices: Iterable[Mapping[str, Any]], der_id: Any) -> str | None:
    """Return the hardware id of the device holding a DER, if the device list has one."""
    for device in devices:
        for der in device.get("ders") or ():
            if der.get("id") == der_id and device.get("hardware_id"):
                return str(device["hardware_id"])
    return None
