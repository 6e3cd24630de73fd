"""Security: TLS verified by default, no credential anywhere visible, topics kept to the customer."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import logging
from pathlib import Path
import ssl
import threading
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.energy_telemetry.const import DOMAIN
from simulator.broker import Mosquitto, write_certificates as _write_certificates

from .conftest import (
    CUSTOMER_ID,
    MQTT_PASSWORD,
    MQTT_USERNAME,
    SITE_ID,
    SUBSCRIPTION_ID,
    Novacore,
    wait_for,
)
from .test_ainsite_integration import setup_ainsite, topic, v1


async def _ainsite_flow(hass: HomeAssistant, **overrides: Any) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "ainsite"}
    )
    data = {
        "host": "127.0.0.1",
        "port": 1,
        "tls": True,
        "username": MQTT_USERNAME,
        "password": MQTT_PASSWORD,
        "customer_id": CUSTOMER_ID,
        "subscription_id": SUBSCRIPTION_ID,
        **overrides,
    }
    return dict(await hass.config_entries.flow.async_configure(result["flow_id"], data))


async def _novacore_flow(hass: HomeAssistant, url: str, **credentials: str) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "novacore"}
    )
    return dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {"api_url": url, **credentials}
        )
    )


# --- TLS --------------------------------------------------------------------------------------


async def test_untrusted_broker_certificate_fails(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker whose CA Home Assistant does not trust is refused with a clear error."""
    broker = Mosquitto(tmp_path / "untrusted")
    broker.add_user(MQTT_USERNAME, MQTT_PASSWORD, CUSTOMER_ID)
    broker.start()
    try:
        with caplog.at_level(logging.DEBUG):
            result = await _ainsite_flow(hass, port=broker.tls_port)
    finally:
        broker.stop()
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_certificate"}
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("custom_components.")]
    assert any("certificate verify failed" in line.lower() for line in lines), lines


async def test_untrusted_https_certificate_fails(
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    novacore: Novacore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Novacore over https with a certificate no trusted CA signed: a clear error."""
    _write_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")

    class Sites(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps([{"id": SITE_ID, "name": "Home"}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    # In its own thread: the handshake the client aborts stays out of Home Assistant's loop.
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Sites)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.handle_error = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        token = novacore.server.issue_token(novacore.identity)
        url = f"https://127.0.0.1:{httpd.server_address[1]}"
        with caplog.at_level(logging.WARNING):
            result = await _novacore_flow(hass, url, token=token)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_certificate"}
    assert any("not trusted" in record.getMessage() for record in caplog.records)


# --- credentials --------------------------------------------------------------------------------


def _secrets(novacore: Novacore, tokens: list[str]) -> list[str]:
    pem = novacore.private_key_pem
    body_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [MQTT_PASSWORD, pem.strip(), novacore.private_key_raw_b64, *body_lines, *tokens]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret[:6] + "..." for secret in secrets if secret and secret in text]


async def test_no_credential_anywhere(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    mosquitto: Any,
    novacore: Novacore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Flow, set-up, readings, reconnects, a 401 and reauth, unload: no secret in any log line,
    exception, diagnostics download or attribute."""
    assert await async_setup_component(hass, "diagnostics", {})
    logging.getLogger().setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    server = novacore.server
    token = server.issue_token(novacore.identity)

    # Novacore: a failing attempt with each key form, then a bare token.
    failed = await _novacore_flow(hass, "http://127.0.0.1:1", private_key=novacore.private_key_pem)
    assert failed["errors"] == {"base": "cannot_connect"}
    failed = await _novacore_flow(hass, "NOTJSON", private_key=novacore.private_key_raw_b64)
    assert failed["errors"] == {"base": "cannot_connect"}
    result = await _novacore_flow(hass, server.url, token=token)
    result = dict(
        await hass.config_entries.flow.async_configure(result["flow_id"], {"site_id": SITE_ID})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    nova_entry = result["result"]
    await hass.async_block_till_done()
    await server.wait_for_streams(SITE_ID, 1)
    await novacore.push({"type": "meter", "der_id": "der-meter", "W": 5, "timestamp": 1})

    # Ainsite: set-up, readings, a broker restart.
    mqtt_entry = await setup_ainsite(hass, mosquitto)
    await mosquitto.apublish(topic("mtr-1"), v1(1.5, "2024-11-21T12:00:00Z"))
    await wait_for(lambda: hass.states.get("sensor.meter_mtr_1_energy_register_2"))
    mqtt_entry.runtime_data.connection._backoff_max = 0.5
    await hass.async_add_executor_job(mosquitto.restart)
    await wait_for(lambda: mqtt_entry.runtime_data.connection.connects >= 2)

    # The token is revoked: the stream gets a 401 and reauth starts; the key fixes it.
    nova_entry.runtime_data.stream.backoff_max = 0.2
    server.revoke_all_tokens()
    await server.cut_streams(SITE_ID)
    flows = await wait_for(
        lambda: [
            flow
            for flow in hass.config_entries.flow.async_progress()
            if flow["context"].get("source") == SOURCE_REAUTH
        ],
        20,
    )
    result = dict(
        await hass.config_entries.flow.async_configure(
            flows[0]["flow_id"], {"private_key": novacore.private_key_pem}
        )
    )
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert nova_entry.state is ConfigEntryState.LOADED
    await server.wait_for_streams(SITE_ID, 1)
    minted = [token]

    secrets = _secrets(novacore, minted)
    diagnostics = [
        json.dumps(await get_diagnostics_for_config_entry(hass, hass_client, entry), default=str)
        for entry in (nova_entry, mqtt_entry)
    ]
    attributes = json.dumps(
        [dict(state.attributes) for state in hass.states.async_all()], default=str
    )
    assert await hass.config_entries.async_unload(nova_entry.entry_id)
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()

    ours = [r for r in caplog.records if r.name.startswith("custom_components.")]
    assert any(r.levelno == logging.DEBUG for r in ours)
    assert any("Minted a Novacore token" in r.getMessage() for r in ours)
    log_text = "\n".join(
        f"{record.getMessage()}\n{record.exc_text or ''}" for record in caplog.records
    )
    assert not _leaks(log_text, secrets), "credential in a log line"
    assert not _leaks(caplog.text, secrets), "credential in a formatted log or traceback"
    for text in diagnostics:
        assert not _leaks(text, secrets), "credential in diagnostics"
    assert not _leaks(attributes, secrets), "credential in entity attributes"


# --- topics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["customer_id", "subscription_id"])
@pytest.mark.parametrize("value", ["cust/other", "+", "#", "a+b", "x#"])
async def test_wildcards_in_ids_are_refused(
    hass: HomeAssistant, mosquitto: Any, field: str, value: str
) -> None:
    """Ids that would widen the subscription are refused by the flow (cannot_connect)."""
    result = await _ainsite_flow(hass, port=mosquitto.tls_port, **{field: value})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_subscription_stays_in_the_customer_tree(hass: HomeAssistant, mosquitto: Any) -> None:
    """The filter is the customer's (and subscription's) tree; foreign topics are ignored."""
    entry = await setup_ainsite(hass, mosquitto)
    coordinator = entry.runtime_data
    assert coordinator.connection.topic_filter == (
        f"meters/outbound/{CUSTOMER_ID}/{SUBSCRIPTION_ID}/+"
    )
    mosquitto.wait_for_log(f"meters/outbound/{CUSTOMER_ID}/{SUBSCRIPTION_ID}/+")
    payload = v1(9.0, "2024-11-21T12:00:00Z")
    for foreign in (
        f"meters/outbound/other-customer/{SUBSCRIPTION_ID}/mtr-x",
        f"meters/outbound/{CUSTOMER_ID}/other-sub/mtr-x",
        f"meters/outbound/{CUSTOMER_ID}/{SUBSCRIPTION_ID}/mtr-x/extra",
        "meters/inbound/x/y/z",
    ):
        coordinator._async_on_message(foreign, payload)
    assert coordinator.foreign == 4
    assert "mtr-x" not in coordinator.data
    assert coordinator.diagnostics()["mqtt"]["foreign_topics"] == 4
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_all_subscriptions_filter(hass: HomeAssistant, mosquitto: Any) -> None:
    """Without a subscription id the filter is the customer's tree with one wildcard level."""
    entry = await setup_ainsite(hass, mosquitto, subscription_id="")
    assert entry.runtime_data.connection.topic_filter == f"meters/outbound/{CUSTOMER_ID}/+/+"
    assert await hass.config_entries.async_unload(entry.entry_id)
