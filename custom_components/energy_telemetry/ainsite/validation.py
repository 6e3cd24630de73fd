"""Ainsite settings: the forms that ask for them and the check that the broker takes them.

Used by the config flow (set-up, reauthentication, reconfiguration) and by the repair flow.
"""

from __future__ import annotations

from collections.abc import Mapping
import ssl
from typing import Any

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.util.ssl import client_context
import voluptuous as vol

from ..const import (
    CONF_CLIENT_ID,
    CONF_CUSTOMER_ID,
    CONF_SOURCE,
    CONF_SUBSCRIPTION_ID,
    CONF_TLS,
    LOGGER,
    SOURCE_AINSITE,
)
from ..protocol.ainsite import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    AinsiteAuthError,
    AinsiteCertificateError,
    AinsiteError,
    AinsiteSubscribeError,
    async_validate,
)

_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_TEXT = TextSelector()


def credentials_schema(defaults: Mapping[str, Any], *, reauth: bool = False) -> vol.Schema:
    """Return the form of new Ainsite credentials (the same on reauthentication)."""
    return vol.Schema(
        {
            vol.Required(CONF_USERNAME, default=defaults[CONF_USERNAME]): _TEXT,
            vol.Required(CONF_PASSWORD): _PASSWORD,
        }
    )


def connection_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    """Return the form of a whole Ainsite connection: broker, credentials, customer's topic."""
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, DEFAULT_HOST)): _TEXT,
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)): vol.All(
                NumberSelector(NumberSelectorConfig(min=1, max=65535, mode=NumberSelectorMode.BOX)),
                vol.Coerce(int),
            ),
            vol.Required(CONF_TLS, default=defaults.get(CONF_TLS, True)): BooleanSelector(),
            vol.Required(CONF_USERNAME, default=defaults.get(CONF_USERNAME, vol.UNDEFINED)): _TEXT,
            vol.Required(CONF_PASSWORD): _PASSWORD,
            vol.Required(
                CONF_CUSTOMER_ID, default=defaults.get(CONF_CUSTOMER_ID, vol.UNDEFINED)
            ): _TEXT,
            vol.Optional(
                CONF_SUBSCRIPTION_ID,
                description={"suggested_value": defaults.get(CONF_SUBSCRIPTION_ID)},
            ): _TEXT,
        }
    )


def unique_id(customer_id: str, subscription_id: str | None) -> str:
    """Return the unique id of an Ainsite entry."""
    return f"{customer_id}/{subscription_id}" if subscription_id else customer_id


def connection_data(user_input: Mapping[str, Any], client_id: str) -> dict[str, Any]:
    """Return the data of an entry from the connection form."""
    subscription = (user_input.get(CONF_SUBSCRIPTION_ID) or "").strip() or None
    return {
        CONF_SOURCE: SOURCE_AINSITE,
        CONF_HOST: str(user_input[CONF_HOST]).strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_TLS: bool(user_input[CONF_TLS]),
        CONF_USERNAME: user_input[CONF_USERNAME],
        CONF_PASSWORD: user_input[CONF_PASSWORD],
        CONF_CUSTOMER_ID: str(user_input[CONF_CUSTOMER_ID]).strip(),
        CONF_SUBSCRIPTION_ID: subscription,
        CONF_CLIENT_ID: client_id,
    }


async def async_tls_context(hass: HomeAssistant, tls: bool) -> ssl.SSLContext | None:
    """Return Home Assistant's verifying client context (built off the event loop), or None."""
    if not tls:
        return None
    return await hass.async_add_executor_job(client_context)


async def async_check(hass: HomeAssistant, data: Mapping[str, Any], errors: dict[str, str]) -> bool:
    """Connect and subscribe with the given settings; set errors and return False on failure."""
    try:
        await async_validate(
            host=data[CONF_HOST],
            port=data[CONF_PORT],
            username=data[CONF_USERNAME],
            password=data[CONF_PASSWORD],
            customer_id=data[CONF_CUSTOMER_ID],
            subscription_id=data.get(CONF_SUBSCRIPTION_ID),
            tls_context=await async_tls_context(hass, data[CONF_TLS]),
        )
    except AinsiteAuthError:
        errors["base"] = "invalid_auth"
    except AinsiteSubscribeError:
        errors["base"] = "subscribe_failed"
    except AinsiteCertificateError as err:
        LOGGER.warning("Ainsite broker %s: %s", data[CONF_HOST], err)
        errors["base"] = "invalid_certificate"
    except (AinsiteError, ValueError) as err:
        LOGGER.debug("Ainsite broker check failed: %s", err)
        errors["base"] = "cannot_connect"
    return not errors


async def async_validate_credentials(
    hass: HomeAssistant,
    entry_data: Mapping[str, Any],
    user_input: Mapping[str, Any],
    errors: dict[str, str],
) -> dict[str, Any] | None:
    """Check new credentials of an entry; return the entry data to update, or None with errors."""
    if await async_check(hass, {**entry_data, **user_input}, errors):
        return dict(user_input)
    return None
