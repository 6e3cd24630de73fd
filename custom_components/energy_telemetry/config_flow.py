"""Config flow of the Energy Telemetry integration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
import uuid

from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from .ainsite import (
    AinsiteAuthError,
    AinsiteCertificateError,
    AinsiteError,
    AinsiteSubscribeError,
    async_validate,
)
from .compat import ReloadingOptionsFlow
from .const import (
    CONF_API_URL,
    CONF_CLIENT_ID,
    CONF_CUSTOMER_ID,
    CONF_PRIVATE_KEY,
    CONF_REGISTERS,
    CONF_SIGNS,
    CONF_SITE_ID,
    CONF_SOURCE,
    CONF_SUBSCRIPTION_ID,
    CONF_TLS,
    CONF_TOKEN,
    DEFAULT_AINSITE_HOST,
    DEFAULT_AINSITE_PORT,
    DEFAULT_API_URL,
    DOMAIN,
    LOGGER,
    SIGN_DER_TYPES,
    SOURCE_AINSITE,
    SOURCE_NOVACORE,
)
from .coordinator import EnergyTelemetryConfigEntry
from .novacore import (
    InvalidKeyError,
    NovacoreAuthError,
    NovacoreCertificateError,
    NovacoreClient,
    NovacoreConnectionError,
    NovacoreError,
    Site,
    load_signer,
)
from .registers import REGISTER_KINDS, UNITS_BY_KIND, async_tls_context
from .sign_evidence import Override

_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_MULTILINE = TextSelector(TextSelectorConfig(multiline=True))
_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
_TEXT = TextSelector()


def novacore_schema(defaults: Mapping[str, Any], with_url: bool = True) -> vol.Schema:
    """Return the form of Novacore credentials (and the API URL, unless it stays as it is)."""
    fields: dict[vol.Marker, Any] = {}
    if with_url:
        fields[vol.Required(CONF_API_URL, default=defaults.get(CONF_API_URL, DEFAULT_API_URL))] = (
            _URL
        )
    fields[vol.Optional(CONF_PRIVATE_KEY)] = _MULTILINE
    fields[vol.Optional(CONF_TOKEN)] = _PASSWORD
    return vol.Schema(fields)


def ainsite_credentials_schema(username: str) -> vol.Schema:
    """Return the form of new Ainsite credentials."""
    return vol.Schema(
        {
            vol.Required(CONF_USERNAME, default=username): _TEXT,
            vol.Required(CONF_PASSWORD): _PASSWORD,
        }
    )


def _ainsite_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, DEFAULT_AINSITE_HOST)): _TEXT,
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_AINSITE_PORT)): vol.All(
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


def ainsite_unique_id(customer_id: str, subscription_id: str | None) -> str:
    """Return the unique id of an Ainsite entry."""
    return f"{customer_id}/{subscription_id}" if subscription_id else customer_id


async def async_novacore_login(
    hass: HomeAssistant, user_input: dict[str, Any], errors: dict[str, str]
) -> tuple[dict[str, Any] | None, list[Site]]:
    """Check Novacore credentials; return the entry data they give and the sites they see.

    On failure the data is None and `errors` says why (the config, reauth, reconfigure and
    repair flows share this check).
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
        return None, []
    except NovacoreCertificateError as err:
        LOGGER.warning("Novacore at %s: %s", api_url, err)
        errors["base"] = "invalid_certificate"
        return None, []
    except NovacoreConnectionError:
        errors["base"] = "cannot_connect"
        return None, []
    except NovacoreError as err:
        LOGGER.debug("Unexpected answer from %s: %s", api_url, err)
        errors["base"] = "cannot_connect"
        return None, []
    return {
        CONF_API_URL: api_url,
        CONF_PRIVATE_KEY: key or None,
        CONF_TOKEN: None if key else token,
    }, sites


async def async_ainsite_check(
    hass: HomeAssistant, data: Mapping[str, Any], errors: dict[str, str]
) -> bool:
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


class EnergyTelemetryConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a Novacore site or an Ainsite subscription."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Initialise the flow."""
        self._credentials: dict[str, Any] = {}
        self._sites: list[Site] = []
        self._client_id = f"ha-energy-telemetry-{uuid.uuid4().hex}"

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: EnergyTelemetryConfigEntry) -> OptionsFlow:
        """Return the options flow: register mapping (Ainsite) or power signs (Novacore)."""
        if config_entry.data.get(CONF_SOURCE) == SOURCE_AINSITE:
            return RegisterOptionsFlow()
        return SignOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the service."""
        return self.async_show_menu(step_id="user", menu_options=[SOURCE_NOVACORE, SOURCE_AINSITE])

    # --- Novacore -----------------------------------------------------------------------------

    async def _async_novacore_login(
        self, user_input: dict[str, Any], errors: dict[str, str]
    ) -> dict[str, Any] | None:
        """Check the credentials; return the entry data they give, or None with errors set."""
        credentials, self._sites = await async_novacore_login(self.hass, user_input, errors)
        return credentials

    async def async_step_novacore(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the API URL and a private key or a token."""
        errors: dict[str, str] = {}
        if user_input is not None:
            credentials = await self._async_novacore_login(user_input, errors)
            if credentials is not None:
                if not self._sites:
                    return self.async_abort(reason="no_sites")
                self._credentials = credentials
                return await self.async_step_site()
        return self.async_show_form(
            step_id="novacore",
            data_schema=self.add_suggested_values_to_schema(
                novacore_schema(user_input or {}), user_input
            ),
            errors=errors,
        )

    async def async_step_site(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the site."""
        if user_input is not None:
            site_id = user_input[CONF_SITE_ID]
            site = next(site for site in self._sites if site.id == site_id)
            await self.async_set_unique_id(site_id)
            self._abort_if_unique_id_configured()
            return self.async_create_entry(
                title=site.name,
                data={CONF_SOURCE: SOURCE_NOVACORE, **self._credentials, CONF_SITE_ID: site_id},
            )
        options = [SelectOptionDict(value=site.id, label=site.name) for site in self._sites]
        return self.async_show_form(
            step_id="site",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_SITE_ID, default=self._sites[0].id): SelectSelector(
                        SelectSelectorConfig(options=options, mode=SelectSelectorMode.LIST)
                    )
                }
            ),
        )

    # --- Ainsite ------------------------------------------------------------------------------

    async def _async_ainsite_check(self, data: dict[str, Any], errors: dict[str, str]) -> bool:
        """Connect and subscribe with the given settings; set errors and return False on failure."""
        return await async_ainsite_check(self.hass, data, errors)

    @staticmethod
    def _ainsite_data(user_input: dict[str, Any], client_id: str) -> dict[str, Any]:
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

    async def async_step_ainsite(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the broker, the credentials and the customer's topic."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = self._ainsite_data(user_input, self._client_id)
            await self.async_set_unique_id(
                ainsite_unique_id(data[CONF_CUSTOMER_ID], data[CONF_SUBSCRIPTION_ID])
            )
            self._abort_if_unique_id_configured()
            if await self._async_ainsite_check(data, errors):
                title = data[CONF_CUSTOMER_ID]
                if data[CONF_SUBSCRIPTION_ID]:
                    title = f"{title} / {data[CONF_SUBSCRIPTION_ID]}"
                return self.async_create_entry(title=f"Ainsite {title}", data=data)
        return self.async_show_form(
            step_id="ainsite",
            data_schema=_ainsite_schema(user_input or {}),
            errors=errors,
        )

    # --- reauth and reconfigure ---------------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start re-authentication."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new credentials."""
        entry = self._get_reauth_entry()
        if entry.data[CONF_SOURCE] == SOURCE_AINSITE:
            return await self._async_ainsite_credentials("reauth_confirm", entry, user_input)
        return await self._async_novacore_credentials("reauth_confirm", entry, user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the connection settings of an entry."""
        entry = self._get_reconfigure_entry()
        if entry.data[CONF_SOURCE] == SOURCE_AINSITE:
            return await self._async_ainsite_reconfigure(entry, user_input)
        return await self._async_novacore_credentials("reconfigure", entry, user_input)

    async def _async_novacore_credentials(
        self,
        step_id: str,
        entry: EnergyTelemetryConfigEntry,
        user_input: dict[str, Any] | None,
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        reconfigure = step_id == "reconfigure"
        if user_input is not None:
            login = dict(user_input)
            if not reconfigure:
                login[CONF_API_URL] = entry.data[CONF_API_URL]
            credentials = await self._async_novacore_login(login, errors)
            if credentials is not None:
                if entry.data[CONF_SITE_ID] not in {site.id for site in self._sites}:
                    errors["base"] = "site_not_found"
                else:
                    return self.async_update_reload_and_abort(entry, data_updates=credentials)
        return self.async_show_form(
            step_id=step_id,
            data_schema=novacore_schema(entry.data if reconfigure else {}, with_url=reconfigure),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_ainsite_credentials(
        self,
        step_id: str,
        entry: EnergyTelemetryConfigEntry,
        user_input: dict[str, Any] | None,
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input}
            if await self._async_ainsite_check(data, errors):
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        return self.async_show_form(
            step_id=step_id,
            data_schema=ainsite_credentials_schema(entry.data[CONF_USERNAME]),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_ainsite_reconfigure(
        self, entry: EnergyTelemetryConfigEntry, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data = self._ainsite_data(user_input, entry.data[CONF_CLIENT_ID])
            await self.async_set_unique_id(
                ainsite_unique_id(data[CONF_CUSTOMER_ID], data[CONF_SUBSCRIPTION_ID])
            )
            self._abort_if_unique_id_mismatch()
            if await self._async_ainsite_check(data, errors):
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="ainsite_reconfigure",
            data_schema=_ainsite_schema(user_input or entry.data),
            errors=errors,
        )

    async def async_step_ainsite_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Handle the form of an Ainsite reconfiguration."""
        return await self._async_ainsite_reconfigure(self._get_reconfigure_entry(), user_input)


class RegisterOptionsFlow(ReloadingOptionsFlow):
    """Tell what an Ainsite register measures and in which unit; the entry reloads with it."""

    def __init__(self) -> None:
        """Initialise the flow."""
        self._register: str | None = None

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose a register seen so far."""
        registers = sorted(self.config_entry.runtime_data.known_registers())
        if not registers:
            return self.async_abort(reason="no_registers")
        if user_input is not None:
            self._register = user_input["register"]
            return await self.async_step_register()
        return self.async_show_form(
            step_id="init",
            data_schema=vol.Schema(
                {
                    vol.Required("register", default=registers[0]): SelectSelector(
                        SelectSelectorConfig(options=registers, mode=SelectSelectorMode.DROPDOWN)
                    )
                }
            ),
        )

    async def async_step_register(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Set the kind and unit of the chosen register."""
        assert self._register is not None
        mappings: dict[str, Any] = dict(self.config_entry.options.get(CONF_REGISTERS, {}))
        current = mappings.get(self._register, {})
        errors: dict[str, str] = {}
        if user_input is not None:
            kind = user_input["kind"]
            unit = user_input.get("unit") or None
            if unit is not None and UNITS_BY_KIND[kind] and unit not in UNITS_BY_KIND[kind]:
                errors["unit"] = "invalid_unit"
            else:
                mappings[self._register] = {"kind": kind, "unit": unit}
                return self.async_create_entry(
                    data={**self.config_entry.options, CONF_REGISTERS: mappings}
                )
        all_units = sorted({unit for units in UNITS_BY_KIND.values() for unit in units})
        return self.async_show_form(
            step_id="register",
            data_schema=vol.Schema(
                {
                    vol.Required("kind", default=current.get("kind", "number")): SelectSelector(
                        SelectSelectorConfig(
                            options=list(REGISTER_KINDS),
                            translation_key="register_kind",
                            mode=SelectSelectorMode.DROPDOWN,
                        )
                    ),
                    vol.Optional(
                        "unit", description={"suggested_value": current.get("unit")}
                    ): SelectSelector(
                        SelectSelectorConfig(
                            options=all_units, custom_value=True, mode=SelectSelectorMode.DROPDOWN
                        )
                    ),
                }
            ),
            errors=errors,
            description_placeholders={"register": self._register},
        )


class SignOptionsFlow(ReloadingOptionsFlow):
    """Choose, per DER type, how the sign of the wire's power is decided; the entry reloads."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Go to the sign choices (their own step: `init` names the register step's strings)."""
        return await self.async_step_signs()

    async def async_step_signs(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One choice per DER type: automatic (from the DER's counters), as documented, inverted."""
        if user_input is not None:
            return self.async_create_entry(
                data={**self.config_entry.options, CONF_SIGNS: dict(user_input)}
            )
        current: dict[str, str] = dict(self.config_entry.options.get(CONF_SIGNS, {}))
        selector = SelectSelector(
            SelectSelectorConfig(
                options=[choice.value for choice in Override],
                translation_key="sign",
                mode=SelectSelectorMode.DROPDOWN,
            )
        )
        return self.async_show_form(
            step_id="signs",
            data_schema=vol.Schema(
                {
                    vol.Required(
                        der_type, default=current.get(der_type, Override.AUTOMATIC.value)
                    ): selector
                    for der_type in SIGN_DER_TYPES
                }
            ),
        )
