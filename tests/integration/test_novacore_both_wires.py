"""One simulated site through both wires Sourceful's sources show: identical Home Assistant states."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest

from simulator.model import SiteModel
from simulator.novacore_server import NovacoreServer, encode_public_key
from simulator.wire import WIRES
from tests.helpers.flows import start_flow
from tests.helpers.waiting import wait_for

STEPS = 20
STEP_SECONDS = 90.0


class Site:
    """A site model behind a server speaking one wire, added to Home Assistant."""

    def __init__(self, wire: str, start: datetime) -> None:
        self.wire = wire
        self.site_id = f"sit-{wire}"
        self.server = NovacoreServer(keepalive_interval=0, wire=wire)
        self.model = SiteModel(
            self.site_id,
            f"{wire} site",
            seed=17,
            start=start,
            clock=lambda: self.model.sim_time.timestamp(),  # noqa: PLW0108 - set here
        )
        self.entry: Any = None

    async def start(self, hass: HomeAssistant) -> None:
        await self.server.start()
        identity = self.server.add_identity(encode_public_key(Ed25519PrivateKey.generate()))
        self.server.add_site(self.site_id, self.model.name, self.model.devices())
        result = await start_flow(hass, "novacore")
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {"api_url": self.server.url, "token": self.server.issue_token(identity)},
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"site_id": self.site_id}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY, result
        await hass.async_block_till_done()
        self.entry = result["result"]
        assert self.entry.state is ConfigEntryState.LOADED
        await self.server.wait_for_streams(self.site_id)

    async def step(self, seconds: float) -> None:
        """Advance the model and push one reading per DER; wait until all are handled."""
        stats = self.entry.runtime_data.stream.stats
        before = stats.events
        readings = self.model.step(seconds) if seconds else self.model.readings()
        for reading in readings:
            await self.server.push(self.site_id, reading)
        await wait_for(lambda: stats.events >= before + len(readings))

    def states(self, hass: HomeAssistant) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Every entity's state and attributes by (DER type, platform, key)."""
        types = {der_id: der_type for der_type, der_id in self.model.der_ids.items()}
        found = {}
        registry = er.async_get(hass)
        for entity in er.async_entries_for_config_entry(registry, self.entry.entry_id):
            der_id, _, key = entity.unique_id.removeprefix(f"{self.site_id}_").partition("_")
            state = hass.states.get(entity.entity_id)
            attributes = None if state is None else dict(state.attributes)
            if der_id not in types and attributes is not None:
                # The site's own sensors (the house's consumption) carry the site's name.
                attributes.pop("friendly_name")
            found[(types.get(der_id, der_id), entity.domain, key)] = {
                "enabled": entity.disabled_by is None,
                "state": None if state is None else state.state,
                "attributes": attributes,
            }
        return found


@pytest.fixture
async def sites(socket_enabled: None, request: pytest.FixtureRequest) -> AsyncGenerator[list[Site]]:
    start = datetime(2025, 6, 21, tzinfo=UTC).replace(hour=request.param)
    running = [Site(wire, start) for wire in WIRES]
    try:
        yield running
    finally:
        for site in running:
            await site.server.stop()


@pytest.mark.parametrize(
    "sites",
    [
        pytest.param(12, id="noon"),  # PV producing, battery charging, exporting
        pytest.param(18, id="evening"),  # EV charging or feeding the peak, battery discharging
    ],
    indirect=True,
)
async def test_both_wires_give_identical_states(hass: HomeAssistant, sites: list[Site]) -> None:
    """The documented and the legacy wire of one site: every state and attribute the same.

    The legacy wire inverts the battery's and the meter's signs: each DER's energy counters prove
    it within the first simulated minutes, and the values shown are then the documented run's.
    """
    documented, legacy = sites
    assert (documented.wire, legacy.wire) == ("documented", "legacy")
    for site in sites:
        await site.start(hass)
        await site.step(0)

    for _ in range(STEPS):
        for site in sites:
            await site.step(STEP_SECONDS)
    await hass.async_block_till_done()

    # The signs were decided from the counters, not assumed: inverted where the legacy wire is.
    for site in sites:
        signs = site.entry.runtime_data.signs
        for der_type in ("battery", "meter", "pv"):
            der = site.model.der_ids[der_type]
            inverted = site.wire == "legacy" and der_type != "pv"
            assert signs.factor(der, der_type) == (-1 if inverted else 1), (site.wire, der_type)
            assert signs.status(der, der_type).value == "decided", (site.wire, der_type)
    one, other = (site.states(hass) for site in sites)
    assert len(one) > 80
    assert set(one) == set(other)
    different = {key: (one[key], other[key]) for key in one if one[key] != other[key]}
    assert not different
    # The scenario exercises what it claims to.
    shown = {key: value["state"] for key, value in one.items()}
    assert shown[("v2x_charger", "binary_sensor", "plug_connected")] in ("on", "off")
    assert float(shown[("home", "sensor", "power")]) > 0  # the house's consumption, both wires
    assert float(shown[("home", "sensor", "energy")]) > 0
    if documented.model.sim_time.hour < 15:
        assert float(shown[("pv", "sensor", "power")]) > 1000
    else:
        assert shown[("v2x_charger", "sensor", "status")] in ("charging", "discharging")
    for site in sites:
        assert await hass.config_entries.async_unload(site.entry.entry_id)
