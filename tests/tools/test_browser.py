"""Seen in a real browser: Home Assistant's own frontend in Chromium, driven as a user does.

Settings -> Devices & services -> Add integration -> Energy Telemetry -> Sourceful Novacore ->
the API URL of a Novacore simulator server and its private key -> the site -> Finish; then the
entry's Configure -> Energy dashboard -> Submit; then the Energy page shows the grid, the solar
panels and the battery. Once with the user's language English, once Swedish.

Every dialog on the way must show the integration's texts in the user's language (read from
translations/<language>.json: titles, menu options, field labels and descriptions, the messages),
none of its English texts in Swedish (Home Assistant falls back to English for a string a
translation lacks), and no translation key anywhere on the page (`component.energy_telemetry.`,
`config.step.`, `ui.` ...). The page text is read through the open shadow roots the frontend's
web components render into, the dialogs included: Playwright's `inner_text` of the body does not
see them.

Needs Chromium (Debian's `chromium`: CI installs it; skipped here without it) and Home Assistant's
frontend (home-assistant-frontend; skipped without it). Runs without the test harness too (CI runs
it with --noconftest on the newest release).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterable
import contextlib
from dataclasses import dataclass
import importlib.util
import json
from pathlib import Path
import re
import shutil
import sys
from typing import Any, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from simulator.demo import CONFIGURED_INTEGRATIONS, local_time_zone
from simulator.homeassistant import HomeAssistantProcess
from simulator.model import SiteModel, run_site
from simulator.novacore_server import NovacoreServer, private_key_pem
from simulator.screenshot import CHROMIUM_FLAGS
from simulator.wait import WaitTimeoutError, poll
from tests.helpers.repository import INTEGRATION, environment_without_coverage

DOMAIN = "energy_telemetry"
SITE_ID = "sit-browser"
SITE_NAME = "Browser Home"
USERNAME = "browser"
PASSWORD = "browser-test-password"
FINISH = "ui.panel.config.integrations.config_flow.finish"
FINISH_SKIP = "ui.panel.config.integrations.config_flow.finish_skip"
STEP_TIMEOUT = 90.0
"""Seconds a page step may take (a hang guard: the machine may be busy)."""
START_TIMEOUT = 300.0
"""Seconds Home Assistant may take to start."""
# What a translation key looks like where the frontend shows one instead of its text.
UNTRANSLATED = re.compile(
    r"\[%key:[^%\]]*%\]"  # a reference left unresolved in a translation file
    r"|\bcomponent\.[a-z0-9_]+\.[a-z0-9_.]+"
    r"|\b(?:config|options|config_subentries)\.(?:step|error|abort|progress|create_entry)\.[a-z0-9_.]+"
    r"|\bui\.[a-z_]+\.[a-z0-9_.-]+"
    r"|\b(?:entity|state|state_attributes|selector)\.[a-z0-9_]+\.[a-z0-9_.]+"
)

# The visible text of the page: every text node, in open shadow roots too (the frontend is web
# components, its dialogs included), leaving out styles, scripts and what is not shown.
_PAGE_TEXT_JS = """
() => {
  const parts = [];
  const skip = new Set(["STYLE", "SCRIPT", "TEMPLATE", "NOSCRIPT"]);
  const range = document.createRange();
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        // Shown: laid out in boxes (not in a hidden element, nor a slot's unused fallback).
        range.selectNodeContents(child);
        if (range.getClientRects().length) parts.push(child.textContent);
      } else if (child.nodeType === Node.ELEMENT_NODE && !skip.has(child.tagName)) {
        walk(child);
      }
    }
  };
  walk(document);
  return parts.join(" ").replace(/\\s+/g, " ");
}
"""
_SHOWS_ALL_JS = f"(needles) => {{ const text = ({_PAGE_TEXT_JS})();"
_SHOWS_ALL_JS += " return needles.every((needle) => text.includes(needle)); }"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return None


def _frontend() -> Path | None:
    spec = importlib.util.find_spec("hass_frontend")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def integration_strings(language: str) -> dict[str, str]:
    """Return the integration's texts in a language, by their dotted keys."""
    path = INTEGRATION / "translations" / f"{language}.json"
    return _flatten(json.loads(path.read_text(encoding="utf-8")))


def frontend_strings(frontend: Path, language: str) -> dict[str, str]:
    """Return the installed frontend's own texts in a language (its buttons, its panels)."""
    found: dict[str, str] = {}
    pattern = re.compile(rf"{re.escape(language)}-[0-9a-f]+\.json")
    base = frontend / "static" / "translations"
    for path in sorted([*base.glob(f"{language}-*.json"), *base.glob(f"*/{language}-*.json")]):
        if pattern.fullmatch(path.name):
            found.update(json.loads(path.read_text(encoding="utf-8")))
    assert found, f"the frontend in {frontend} has no {language} translations"
    return found


def _segments(text: str) -> list[str]:
    """Return the parts of a text that show as they are: between placeholders, line by line."""
    parts = re.split(r"\{[a-z_]+\}|\n", text)
    return [" ".join(part.split()) for part in parts if len(part.strip()) >= 3]


@dataclass
class Texts:
    """What the pages must show in the user's language, and must not show."""

    language: str
    mine: dict[str, str]
    english: dict[str, str]
    ui: dict[str, str]

    def shown(self, key: str) -> str:
        """Return the text Home Assistant shows for a key: English where the language lacks it."""
        return self.mine.get(key, self.english[key])

    def of(self, *keys: str) -> list[str]:
        """Return the integration's texts of keys (a key ending in "." takes all below it).

        A key the language lacks has none: Home Assistant shows its English text (unwanted).
        """
        return [
            segment
            for key in self._expand(keys)
            if key in self.mine
            for segment in _segments(self.mine[key])
        ]

    def english_of(self, *keys: str) -> list[str]:
        """Return the English texts of keys that the user's language says otherwise (or not)."""
        if self.language == "en":
            return []
        mine = set(self.of(*keys))
        return [
            segment
            for key in self._expand(keys)
            for segment in _segments(self.english[key])
            if segment not in mine and len(segment) >= 4
        ]

    def _expand(self, keys: Iterable[str]) -> list[str]:
        """Return the keys, those below a key ending in "." in its place (English has all)."""
        found = []
        for key in keys:
            if key.endswith("."):
                below = sorted(name for name in self.english if name.startswith(key))
                assert below, f"translations/en.json has nothing under {key}"
                found += below
            else:
                assert key in self.english, f"translations/en.json lacks {key}"
                found.append(key)
        return found


class Browser:
    """One page of Chromium, and the checks of what it shows."""

    def __init__(self, page: Any, texts: Texts, screenshots: Path) -> None:
        """Wrap a Playwright page."""
        self.page = page
        self.texts = texts
        self.screenshots = screenshots
        self.seen: list[str] = []

    async def text(self) -> str:
        """Return the visible text of the page, shadow roots included."""
        return str(await self.page.evaluate(_PAGE_TEXT_JS))

    async def shows(self, what: str, needles: list[str], *, unwanted: Iterable[str] = ()) -> str:
        """Wait until the page shows every needle; then fail on a translation key or unwanted text.

        `what` names the step in the failure message.
        """
        needles = [" ".join(needle.split()) for needle in needles]
        try:
            await self.page.wait_for_function(
                _SHOWS_ALL_JS, arg=needles, timeout=STEP_TIMEOUT * 1000, polling=250
            )
        except Exception as err:  # Playwright's TimeoutError, or the page went away
            text = await self.text()
            await self.fail(
                what, f"the page does not show {[n for n in needles if n not in text]}", err
            )
        text = await self.text()
        self.seen.append(what)
        keys = sorted(set(UNTRANSLATED.findall(text)))
        if keys:
            shot = await self.screenshot(what)
            pytest.fail(f"{what}: untranslated keys on the page: {keys}; screenshot {shot}")
        leftovers = [item for item in unwanted if " ".join(item.split()) in text]
        if leftovers:
            shot = await self.screenshot(what)
            pytest.fail(
                f"{what}: English texts in a {self.texts.language} page: {leftovers};"
                f" screenshot {shot}"
            )
        return text

    async def fail(self, what: str, problem: str, err: Exception) -> NoReturn:
        """Fail the step `what`: the problem, the error, what the page shows, a screenshot."""
        text = await self.text()
        shot = await self.screenshot(what)
        pytest.fail(
            f"{what}: {problem} ({type(err).__name__}: {str(err)[:300]});"
            f" the page shows: {text[:2000]!r}; screenshot {shot}"
        )

    async def screenshot(self, what: str) -> Path:
        """Save a screenshot for a failure message."""
        path = (
            self.screenshots
            / f"{len(self.seen):02d}-{re.sub(r'[^a-z0-9]+', '-', what.lower())}.png"
        )
        with contextlib.suppress(Exception):
            await self.page.screenshot(path=str(path))
        return path

    async def click(self, what: str, locator: Any, *, check: bool = False) -> None:
        """Click what a locator finds (tick it: `check`); fail saying what the page showed."""
        try:
            await (locator.check() if check else locator.click())
        except Exception as err:  # Playwright's TimeoutError, or the page went away
            await self.fail(what, f"cannot click {locator}", err)

    async def fill(self, what: str, locator: Any, value: str) -> None:
        """Type a value into what a locator finds; fail saying what the page showed."""
        try:
            await locator.fill(value)
        except Exception as err:  # Playwright's TimeoutError, or the page went away
            await self.fail(what, f"cannot fill {locator}", err)

    async def dialog_step(self, what: str, *keys: str, extra: Iterable[str] = ()) -> str:
        """Check a flow step: the integration's texts of keys, in the user's language."""
        return await self.shows(
            what, [*self.texts.of(*keys), *extra], unwanted=self.texts.english_of(*keys)
        )


# --------------------------------------------------------------------------- the peers


@dataclass
class Instance:
    """A Home Assistant with its frontend, onboarded, and a Novacore server with one site."""

    hass: HomeAssistantProcess
    novacore: NovacoreServer
    key: Ed25519PrivateKey


@contextlib.asynccontextmanager
async def instance(tmp_path: Path, language: str) -> AsyncIterator[Instance]:
    """Start the Novacore server and Home Assistant, its language and its owner's `language`."""
    novacore = NovacoreServer()
    await novacore.start("127.0.0.1", 0)
    key = Ed25519PrivateKey.generate()
    identity = novacore.add_identity(
        base64.b64encode(key.public_key().public_bytes_raw()).decode(), "idn-browser"
    )
    model = SiteModel(SITE_ID, SITE_NAME, speed=720)
    novacore.add_site(SITE_ID, SITE_NAME, model.devices(), identities=[identity])
    site = asyncio.create_task(run_site(novacore, model), name="novacore-site")

    config = tmp_path / "config"
    config.mkdir()
    env = {**environment_without_coverage(), "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    hass = HomeAssistantProcess(sys.executable, config, output=tmp_path / "hass.out", env=env)
    try:
        hass.write_configuration(
            "\n".join(
                [
                    *(f"{domain}:" for domain in CONFIGURED_INTEGRATIONS),
                    "logger:",
                    "  default: warning",
                ]
            )
            + "\n"
        )
        hass.link_integrations(INTEGRATION)
        await hass.start(START_TIMEOUT)
        await hass.onboard("Browser", USERNAME, PASSWORD)
        await hass.call(
            "config/core/update",
            currency="EUR",
            country="SE",
            language=language,
            time_zone=local_time_zone(),
            unit_system="metric",
        )
        # The user's language, as the profile page saves it (the frontend reads it on connect).
        await hass.call(
            "frontend/set_user_data",
            key="language",
            value={"language": language, "number_format": "language", "time_format": "language"},
        )
        yield Instance(hass, novacore, key)
    finally:
        await hass.stop(60)
        site.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await site
        await novacore.stop()


async def wait_for_energy_values(hass: HomeAssistantProcess) -> None:
    """Wait until the site's energy counters have values (the dashboard takes those only)."""
    missing: list[str] = ["the integration's energy sensors"]

    async def counted() -> bool:
        registry = await hass.call("config/entity_registry/list")
        mine = {entry["entity_id"] for entry in registry if entry["platform"] == DOMAIN}
        states = await hass.rest("GET", "/api/states")
        energy = {
            state["entity_id"]: state["state"]
            for state in states
            if state["entity_id"] in mine
            and state["attributes"].get("device_class") == "energy"
            and state["attributes"].get("state_class") == "total_increasing"
        }
        missing[:] = [name for name, value in energy.items() if value in ("unknown", "unavailable")]
        # PV, battery (charged, discharged), meter (imported, exported), EV charger.
        if len(energy) < 6:
            missing.append(f"{6 - len(energy)} more energy sensors")
        return not missing

    await poll(counted, timeout=STEP_TIMEOUT, what=lambda: missing, interval=0.5)


# --------------------------------------------------------------------------- the test


@pytest.mark.timeout(600)
@pytest.mark.parametrize("language", ["en", "sv"])
async def test_add_and_energy_dashboard_in_the_browser(
    socket_enabled: None, tmp_path: Path, language: str
) -> None:
    """Add the integration and its energy dashboard through the frontend; see the Energy page."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    frontend = _frontend()
    if frontend is None:
        pytest.skip("home-assistant-frontend is not installed")
    from playwright.async_api import async_playwright

    texts = Texts(
        language,
        integration_strings(language),
        integration_strings("en"),
        frontend_strings(frontend, language),
    )
    ui = texts.ui
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with instance(tmp_path, language) as peers, async_playwright() as playwright:
        hass = peers.hass
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            # The browser's own language stays English: Swedish comes from the user's setting.
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="en-US"
            )
            context.set_default_timeout(STEP_TIMEOUT * 1000)
            page = await context.new_page()
            # Nothing leaves the machine: brand images and the like are not fetched.
            await page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), _abort)
            await _run(Browser(page, texts, shots), hass, peers, ui)
        finally:
            await browser.close()


async def _abort(route: Any) -> None:
    await route.abort()


def _entry(page: Any, roles: tuple[str, str], name: str) -> Any:
    """Return a navigation entry: an item of the sidebar or of the Settings page.

    By its name among words (the sidebar's Settings shows a count of repairs beside it); its
    role is an option or a menu item in some releases, a link in others.
    """
    pattern = re.compile(rf"(^|\s){re.escape(name)}(\s|$)")
    first, second = roles
    return page.get_by_role(first, name=pattern).or_(page.get_by_role(second, name=pattern)).first


async def _run(b: Browser, hass: HomeAssistantProcess, peers: Instance, ui: dict[str, str]) -> None:
    page, texts = b.page, b.texts
    submit = page.get_by_role("button", name=ui["ui.panel.config.integrations.config_flow.submit"])

    # Log in on Home Assistant's login page.
    await page.goto(f"{hass.url}/")
    await b.fill("the login page's username", page.locator("input[name=username]"), USERNAME)
    await b.fill("the login page's password", page.locator("input[name=password]"), PASSWORD)
    await page.locator("input[name=password]").press("Enter")
    await b.shows("the frontend after logging in", [ui["panel.config"], ui["panel.energy"]])

    # Settings -> Devices & services -> Add integration -> search -> Energy Telemetry.
    await b.click("Settings", _entry(page, ("option", "link"), ui["panel.config"]))
    await b.click(
        "Devices & services",
        _entry(page, ("menuitem", "link"), ui["ui.panel.config.dashboard.devices.main"]),
    )
    await page.wait_for_url("**/config/integrations/dashboard")
    await b.click(
        "Add integration",
        page.get_by_role("button", name=ui["ui.panel.config.integrations.add_integration"]),
    )
    search = ui["ui.panel.config.integrations.search_brand"]
    await b.fill(
        "the search of brands",
        # Its label in some releases, its placeholder in others.
        page.get_by_role("textbox", name=search).or_(page.get_by_placeholder(search)).first,
        "Energy Telemetry",
    )
    await b.click("Energy Telemetry", page.get_by_text("Energy Telemetry", exact=True))

    # The config flow: the menu, the Novacore form, the site, the entry.
    await b.dialog_step("the menu of sources", "config.step.user.")
    await b.click(
        "Sourceful Novacore",
        page.get_by_text(texts.shown("config.step.user.menu_options.novacore"), exact=True),
    )
    await b.dialog_step(
        "the Novacore form",
        "config.step.novacore.title",
        "config.step.novacore.description",
        "config.step.novacore.data.",
        "config.step.novacore.data_description.",
    )
    await b.fill(
        "the API URL",
        page.get_by_role("textbox", name=texts.shown("config.step.novacore.data.api_url")),
        peers.novacore.url,
    )
    await b.fill(
        "the private key",
        page.get_by_role("textbox", name=texts.shown("config.step.novacore.data.private_key")),
        private_key_pem(peers.key),
    )
    await b.click("Submit", submit)
    await b.dialog_step("the choice of a site", "config.step.site.", extra=[SITE_NAME])
    await b.click("the site", page.get_by_role("radio", name=SITE_NAME), check=True)
    await b.click("Submit", submit)
    await b.dialog_step("the new entry", "config.create_entry.default")
    # "Finish"; "Skip and finish" where the dialog offers to name the devices and give areas.
    finish = page.get_by_role("button", name=ui[FINISH], exact=True)
    if FINISH_SKIP in ui:
        finish = finish.or_(page.get_by_role("button", name=ui[FINISH_SKIP], exact=True))
    await b.click("Finish", finish.first)

    # The entry -> Configure -> Energy dashboard -> Submit, once its counters have values.
    await peers.novacore.wait_for_streams(SITE_ID, 1, STEP_TIMEOUT)
    try:
        await wait_for_energy_values(hass)
    except WaitTimeoutError as err:
        pytest.fail(f"the entry's energy sensors: {err}\n{hass.log_tail()}")
    await page.goto(f"{hass.url}/config/integrations/integration/{DOMAIN}")
    await b.shows("the integration's page", [SITE_NAME])
    await b.click(
        "Configure",
        page.get_by_role("button", name=ui["ui.panel.config.integrations.config_entry.configure"]),
    )
    await b.dialog_step(
        "the options menu",
        "options.step.init.title",
        "options.step.init.menu_options.signs",
        "options.step.init.menu_options.energy_dashboard",
    )
    await b.click(
        "Energy dashboard",
        page.get_by_text(
            texts.shown("options.step.init.menu_options.energy_dashboard"), exact=True
        ),
    )
    items = ["pv-array", "battery_1", "grid-meter", "ev-charger"]
    await b.dialog_step(
        "the energy dashboard step",
        "options.step.energy_dashboard.title",
        "options.step.energy_dashboard.description",
        "options.step.energy_dashboard.data.grid",
        "options.step.energy_dashboard.data.solar",
        "options.step.energy_dashboard.data.battery",
        "options.step.energy_dashboard.data.device",
        "options.step.energy_dashboard.data_description.",
        extra=items,
    )
    await b.click("Submit", submit)
    await b.dialog_step(
        "the energy dashboard saved", "options.abort.energy_dashboard_saved", extra=items
    )
    prefs = await hass.call("energy/get_prefs")
    assert {source["type"] for source in prefs["energy_sources"]} == {"grid", "solar", "battery"}
    close = ui["ui.panel.config.integrations.config_flow.close"]
    await b.click("Close", page.get_by_role("button", name=close).first)

    # The Energy page.
    await b.click("Energy", _entry(page, ("option", "link"), ui["panel.energy"]))
    await page.wait_for_url("**/energy")
    # The distribution card draws a node per kind of source the dashboard has; the table of
    # sources sums each kind up.
    cards = "ui.panel.lovelace.cards.energy."
    await b.shows(
        "the Energy page",
        [
            ui["ui.panel.energy.cards.energy_distribution_title"],
            *(ui[f"{cards}energy_distribution.{kind}"] for kind in ("grid", "solar", "battery")),
            *(
                ui[f"{cards}energy_sources_table.{kind}_total"]
                for kind in ("grid", "solar", "battery")
            ),
        ],
    )


def test_untranslated_keys_are_recognised() -> None:
    """The pattern finds a key (or an unresolved reference) in page text, and only those."""
    page = (
        "Energikontrollpanel component.energy_telemetry.options.step.energy_dashboard.title"
        " Bekräfta ui.panel.config.integrations.config_flow.submit"
        " [%key:common::config_flow::data::password%] options.abort.energy_dashboard_saved"
    )
    assert UNTRANSLATED.findall(page) == [
        "component.energy_telemetry.options.step.energy_dashboard.title",
        "ui.panel.config.integrations.config_flow.submit",
        "[%key:common::config_flow::data::password%]",
        "options.abort.energy_dashboard_saved",
    ]
    shown = (
        "API URL https://novacore-mainnet.sourceful.dev Base URL of the Novacore API."
        " battery_1 pv-array grid-meter 0 kWh 31% Dec 5 Now Settings → Dashboards → Energy"
    )
    assert UNTRANSLATED.findall(shown) == []
