"""Novacore credentials: the form that asks for them and the check that they work.

Used by the config flow (set-up, reauthentication, reconfiguration) and by the repair flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType
import voluptuous as vol

from ..const import CONF_API_URL, CONF_PRIVATE_KEY, CONF_SITE_ID, CONF_TOKEN, LOGGER
from ..protocol.novacore import (
    DEFAULT_API_URL,
    InvalidKeyError,
    NovacoreAuthError,
    NovacoreCertificateError,
    NovacoreClient,
    NovacoreConnectionError,
    NovacoreError,
    Site,
    load_signer,
)

_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_MULTILINE = TextSelector(TextSelectorConfig(multiline=True))
_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))


def credentials_schema(defaults: Mapping[str, Any], *, reauth: bool = False) -> vol.Schema:
    """Return the form of Novacore credentials, and the API URL (not on reauthentication)."""
    fields: dict[vol.Marker, Any] = {}
    if not reauth:
        fields[vol.Required(CONF_API_URL, default=defaults.get(CONF_API_URL, DEFAULT_API_URL))] = (
            _URL
        )
    fields[vol.Optional(CONF_PRIVATE_KEY)] = _MULTILINE
    fields[vol.Optional(CONF_TOKEN)] = _PASSWORD
    return vol.Schema(fields)


async def async_login(
    hass: HomeAssistant, user_input: Mapping[str, Any], errors: dict[str, str]
) -> tuple[dict[str, Any] | None, list[Site]]:
    """Check Novacore credentials; return the entry data they give and the sites they see.

    On failure the data is None and `errors` says why.
    """
    key = (user_input.get(CONF_PRIVATE_KEY) or "").strip()
    token = (user_input.get(CONF_TOKEN) or "").strip()
    if bool(key) == bool(token):
        errors["base"] = "missing_credentials"
        return None, []
    signer = None
    if key:
        try:
            signer = load_signer(key)
        except InvalidKeyError:
            errors[CONF_PRIVATE_KEY] = "invalid_key"
            return None, []
    api_url = str(user_input[CONF_API_URL]).strip().rstrip("/")
    client = NovacoreClient(
        async_get_clientsession(hass), api_url, signer=signer, token=token or None
    )
    try:
        sites = await client.async_get_sites()
    except NovacoreAuthError:
        errors["base"] = "invalid_auth"
    except NovacoreCertificateError as err:
        LOGGER.warning("Novacore at %s: %s", api_url, err)
        errors["base"] = "invalid_certificate"
    except NovacoreError as err:  # the service cannot be reached, or answers what it should not
        if not isinstance(err, NovacoreConnectionError):
            LOGGER.debug("Unexpected answer from %s: %s", api_url, err)
        errors["base"] = "cannot_connect"
    else:
        return {
            CONF_API_URL: api_url,
            CONF_PRIVATE_KEY: key or None,
            CONF_TOKEN: None if key else token,
        }, sites
    return None, []


async def async_validate_credentials(
    hass: HomeAssistant,
    entry_data: Mapping[str, Any],
    user_input: Mapping[str, Any],
    errors: dict[str, str],
) -> dict[str, Any] | None:
    """Check new credentials of an entry (its API URL unless the input has one).

    Return the entry data to update, or None with `errors` set; credentials that no longer see
    the entry's site are refused (`site_not_found`).
    """
    credentials, sites = await async_login(
        hass, {CONF_API_URL: entry_data[CONF_API_URL], **user_input}, errors
    )
    if credentials is not None and entry_data[CONF_SITE_ID] not in {site.id for site in sites}:
        errors["base"] = "site_not_found"
        return None
    return credentials
