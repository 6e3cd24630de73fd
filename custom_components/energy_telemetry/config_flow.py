"""Config flow of the Energy Telemetry integration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
import uuid

from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import voluptuous as vol

from . import energy_dashboard
from .ainsite import validation as ainsite
from .ainsite.descriptions import REGISTER_KINDS, UNITS_BY_KIND
from .compat import ReloadingOptionsFlow
from .const import (
    CONF_CLIENT_ID,
    CONF_CUSTOMER_ID,
    CONF_REGISTERS,
    CONF_SIGNS,
    CONF_SITE_ID,
    CONF_SOURCE,
    CONF_SUBSCRIPTION_ID,
    DOMAIN,
    LOGGER,
    SIGN_DER_TYPES,
    SOURCE_AINSITE,
    SOURCE_NOVACORE,
)
from .coordinator import EnergyTelemetryConfigEntry
from .energy_dashboard import ROLES, EnergyItem, Role
from .novacore import validation as novacore
from .protocol.novacore import Site
from .protocol.novacore.signs import Override


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

    async def async_step_novacore(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the API URL and a private key or a token."""
        errors: dict[str, str] = {}
        if user_input is not None:
            credentials, self._sites = await novacore.async_login(self.hass, user_input, errors)
            if credentials is not None:
                if not self._sites:
                    return self.async_abort(reason="no_sites")
                self._credentials = credentials
                return await self.async_step_site()
        return self.async_show_form(
            step_id="novacore",
            data_schema=self.add_suggested_values_to_schema(
                novacore.credentials_schema(user_input or {}), user_input
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

    async def async_step_ainsite(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the broker, the credentials and the customer's topic."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = ainsite.connection_data(user_input, self._client_id)
            await self.async_set_unique_id(
                ainsite.unique_id(data[CONF_CUSTOMER_ID], data[CONF_SUBSCRIPTION_ID])
            )
            self._abort_if_unique_id_configured()
            if await ainsite.async_check(self.hass, data, errors):
                title = data[CONF_CUSTOMER_ID]
                if data[CONF_SUBSCRIPTION_ID]:
                    title = f"{title} / {data[CONF_SUBSCRIPTION_ID]}"
                return self.async_create_entry(title=f"Ainsite {title}", data=data)
        return self.async_show_form(
            step_id="ainsite",
            data_schema=ainsite.connection_schema(user_input or {}),
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
        return await self._async_credentials("reauth_confirm", self._get_reauth_entry(), user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the connection settings of an entry."""
        entry = self._get_reconfigure_entry()
        if entry.data[CONF_SOURCE] == SOURCE_AINSITE:
            return await self._async_ainsite_reconfigure(entry, user_input)
        return await self._async_credentials("reconfigure", entry, user_input)

    async def _async_credentials(
        self,
        step_id: str,
        entry: EnergyTelemetryConfigEntry,
        user_input: dict[str, Any] | None,
    ) -> ConfigFlowResult:
        """Ask for new credentials of an entry; on success update it and reload it."""
        validation = ainsite if entry.data[CONF_SOURCE] == SOURCE_AINSITE else novacore
        errors: dict[str, str] = {}
        if user_input is not None:
            updates = await validation.async_validate_credentials(
                self.hass, entry.data, user_input, errors
            )
            if updates is not None:
                return self.async_update_reload_and_abort(entry, data_updates=updates)
        reauth = step_id == "reauth_confirm"
        return self.async_show_form(
            step_id=step_id,
            data_schema=validation.credentials_schema(entry.data, reauth=reauth),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_ainsite_reconfigure(
        self, entry: EnergyTelemetryConfigEntry, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data = ainsite.connection_data(user_input, entry.data[CONF_CLIENT_ID])
            await self.async_set_unique_id(
                ainsite.unique_id(data[CONF_CUSTOMER_ID], data[CONF_SUBSCRIPTION_ID])
            )
            self._abort_if_unique_id_mismatch()
            if await ainsite.async_check(self.hass, data, errors):
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="ainsite_reconfigure",
            data_schema=ainsite.connection_schema(user_input or entry.data),
            errors=errors,
        )

    async def async_step_ainsite_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Handle the form of an Ainsite reconfiguration."""
        return await self._async_ainsite_reconfigure(self._get_reconfigure_entry(), user_input)


class EnergyTelemetryOptionsFlow(ReloadingOptionsFlow):
    """The options of an entry: a menu of its own settings and the energy dashboard."""

    SETTINGS: str
    """The step of the entry's own settings."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Offer the entry's settings and the energy dashboard."""
        return self.async_show_menu(
            step_id="init", menu_options=[self.SETTINGS, "energy_dashboard"]
        )

    # --- the energy dashboard -----------------------------------------------------------------

    def _energy_lists(
        self, items: list[EnergyItem], preferences: dict[str, Any] | None
    ) -> dict[Role, tuple[list[EnergyItem], list[str]]]:
        """Return the form's lists: per role, the items it offers and those ticked at first.

        Each item in the list of its own role, every one ticked: a home can just submit.
        """
        return {
            role: (offered, [item.key for item in offered])
            for role in ROLES
            if (offered := [item for item in items if item.role == role])
        }

    async def async_step_energy_dashboard(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add what this entry measures to Home Assistant's energy dashboard, in one step."""
        hass = self.hass
        if "energy" not in hass.config.components:
            return self.async_abort(reason="no_energy_dashboard")
        coordinator = self.config_entry.runtime_data
        preferences = await energy_dashboard.async_preferences(hass)
        used = energy_dashboard.used_in(preferences)
        candidates = coordinator.energy_items()
        stored = (
            set()
            if coordinator.statistics is None
            else await coordinator.statistics.async_stored(
                [stat for item in candidates for stat in item.statistics]
            )
        )
        present = [item for item in candidates if energy_dashboard.is_present(item, used)]
        waiting = [
            item
            for item in candidates
            if item not in present and not set(item.statistics) <= stored
        ]
        items = [item for item in candidates if item not in present and item not in waiting]
        placeholders = {
            "present": _names(present),
            "waiting": _names(waiting),
        }
        if not items:
            reason = "energy_dashboard_complete"
            if waiting:
                reason = "energy_dashboard_waiting"
            elif not present:
                reason = "energy_dashboard_nothing"
            return self.async_abort(reason=reason, description_placeholders=placeholders)
        lists = self._energy_lists(items, preferences)
        errors: dict[str, str] = {}
        if user_input is not None:
            by_key = {item.key: item for item in items}
            chosen = [
                (by_key[key], role)
                for role in lists
                for key in user_input.get(role, [])
                if key in by_key
            ]
            if len({item.key for item, _ in chosen}) < len(chosen):
                errors["base"] = "chosen_twice"
            else:
                update = energy_dashboard.updated_preferences(preferences, chosen)
                if update is None:
                    return self.async_abort(
                        reason="energy_dashboard_unchanged", description_placeholders=placeholders
                    )
                try:
                    await energy_dashboard.async_save(hass, update)
                except energy_dashboard.EnergyPreferencesError as err:
                    return self.async_abort(
                        reason="energy_dashboard_refused",
                        description_placeholders={"error": str(err)},
                    )
                LOGGER.info(
                    "%s: added to the energy dashboard: %s",
                    self.config_entry.title,
                    ", ".join(f"{item.name} ({role})" for item, role in chosen),
                )
                return self.async_abort(
                    reason="energy_dashboard_saved",
                    description_placeholders={"added": _names(item for item, _ in chosen)},
                )
        schema = {
            vol.Optional(role, default=ticked): SelectSelector(
                SelectSelectorConfig(
                    options=[SelectOptionDict(value=item.key, label=item.name) for item in offered],
                    multiple=True,
                    mode=SelectSelectorMode.LIST,
                )
            )
            for role, (offered, ticked) in lists.items()
        }
        return self.async_show_form(
            step_id="energy_dashboard",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(schema), user_input),
            errors=errors,
            description_placeholders=placeholders,
        )


def _names(items: Iterable[EnergyItem]) -> str:
    """Return the names of items for a message ("-" for none)."""
    return ", ".join(item.name for item in items) or "-"


class RegisterOptionsFlow(EnergyTelemetryOptionsFlow):
    """Tell what an Ainsite register measures and in which unit; the entry reloads with it."""

    SETTINGS = "registers"

    def __init__(self) -> None:
        """Initialise the flow."""
        self._register: str | None = None

    def _energy_lists(
        self, items: list[EnergyItem], preferences: dict[str, Any] | None
    ) -> dict[Role, tuple[list[EnergyItem], list[str]]]:
        """Offer every meter's energy as grid consumption or as an individual device.

        Ticked at first: grid consumption for an entry of one meter when the dashboard has no
        grid consumption yet (a home's own utility meter), individual devices otherwise.
        """
        keys = [item.key for item in items]
        grid = len(self.config_entry.runtime_data.data) == 1 and not (
            energy_dashboard.has_grid_import(preferences)
        )
        return {"grid": (items, keys if grid else []), "device": (items, [] if grid else keys)}

    async def async_step_registers(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose a register seen so far."""
        registers = sorted(self.config_entry.runtime_data.known_registers())
        if not registers:
            return self.async_abort(reason="no_registers")
        if user_input is not None:
            self._register = user_input["register"]
            return await self.async_step_register()
        return self.async_show_form(
            step_id="registers",
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


class SignOptionsFlow(EnergyTelemetryOptionsFlow):
    """Choose, per DER type, how the sign of the wire's power is decided; the entry reloads."""

    SETTINGS = "signs"

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
