"""Which DER a Novacore reading belongs to: the pure routing rules, without Home Assistant."""

from __future__ import annotations

from custom_components.energy_telemetry.protocol.novacore import Der, DerReading, Device
from custom_components.energy_telemetry.protocol.novacore.routing import (
    DerDirectory,
    der_name,
    route_key,
    unlisted_key,
)

PV = Der("der-pv", "Roof", "pv")
BATTERY = Der("der-bat", "Battery 1", "battery")
METER = Der("der-meter", "Grid meter", "meter")
INVERTER = Device("dev-inv", "Sungrow SH10", "inverter", "SN-1", (PV, BATTERY))
SMART_METER = Device("dev-meter", "P1 meter", "meter", "SN-2", (METER,))


def reading(der_type: str, **kwargs: object) -> DerReading:
    fields: dict[str, object] = {
        "der_id": None,
        "make": None,
        "timestamp": 1.0,
        "values": {"W": 1.0},
    }
    fields.update(kwargs)
    return DerReading(der_type, **fields)  # type: ignore[arg-type]


def directory(*devices: Device) -> DerDirectory:
    found = DerDirectory()
    listed = found.load(list(devices))
    assert listed == {device.id for device in devices} | {
        der.id for device in devices for der in device.ders
    }
    return found


def test_a_der_id_names_the_der() -> None:
    route = directory(INVERTER).route(reading("battery", der_id="der-bat"))
    assert (route.key, route.der, route.device, route.replaces) == (
        "der-bat",
        BATTERY,
        INVERTER,
        None,
    )


def test_an_unknown_der_id_is_its_own_group() -> None:
    route = directory(INVERTER).route(reading("battery", der_id="der-new"))
    assert (route.key, route.der, route.device) == ("der-new", None, None)


def test_a_serial_finds_the_device_and_its_der_of_that_type() -> None:
    route = directory(INVERTER, SMART_METER).route(reading("pv", device_sn="SN-1"))
    assert (route.key, route.der, route.device) == ("der-pv", PV, INVERTER)
    assert route.replaces == "pv_sn_1"  # the key its readings had before the list named it


def test_a_serial_of_a_device_without_that_type_keeps_the_device() -> None:
    route = directory(INVERTER).route(reading("ev_charger", device_sn="SN-1"))
    assert (route.key, route.der, route.device) == ("ev_charger_sn_1", None, INVERTER)


def test_the_only_der_of_its_type_takes_readings_without_id() -> None:
    route = directory(INVERTER, SMART_METER).route(reading("meter", make="Kaifa"))
    assert (route.key, route.der, route.replaces) == ("der-meter", METER, "meter_kaifa")


def test_two_of_a_type_without_id_are_grouped_by_serial_make_or_type() -> None:
    second = Device("dev-b", "Second", "battery", None, (Der("der-b2", "B2", "battery"),))
    found = directory(INVERTER, second)
    assert found.route(reading("battery", device_sn="X 9")).key == "battery_x_9"
    assert found.route(reading("battery", make="BYD")).key == "battery_byd"
    assert found.route(reading("battery")).key == "battery"


def test_a_new_list_replaces_the_old() -> None:
    found = directory(INVERTER)
    assert found.load([SMART_METER]) == {"dev-meter", "der-meter"}
    assert found.route(reading("battery", der_id="der-bat")).der is None


def test_keys_and_names_of_unlisted_ders() -> None:
    assert unlisted_key(reading("pv", device_sn="AB-12/c")) == "pv_ab_12_c"
    assert unlisted_key(reading("pv", make="Huawei Sun")) == "pv_huawei_sun"
    assert unlisted_key(reading("pv")) == "pv"
    assert der_name(reading("ev_charger", der_id="der-9"), None) == "EV charger der-9"
    assert der_name(reading("pv", device_sn="SN-7", make="X"), None) == "Solar SN-7"
    assert der_name(reading("heat_pump", make="Nibe"), None) == "Heat Pump Nibe"
    assert der_name(reading("battery"), None) == "Battery"
    assert der_name(reading("battery"), BATTERY) == "Battery 1"


def test_readings_with_equal_route_keys_go_to_the_same_der() -> None:
    one = reading("pv", der_id="a", make="m", device_sn="s", timestamp=1.0)
    other = reading("pv", der_id="a", make="m", device_sn="s", timestamp=2.0, values={"V": 1.0})
    assert route_key(one) == route_key(other)
    assert route_key(one) != route_key(reading("pv", der_id="b", make="m", device_sn="s"))
