"""The rules Home Assistant's validator (hassfest) and HACS apply to the repository's files.

Everything is read from the files at test time, so a string, entity, flow step or manifest key
added later is held to the same rules: no translation string shaped like HTML, strings.json
identical to translations/en.json, every translation key the code uses present in the strings,
an icon for every entity translation key, and manifests hassfest accepts for a custom
integration (required keys, key order).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
import importlib
import json
from pathlib import Path
import pkgutil
import re
import string
from typing import Any

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
from homeassistant.helpers.entity import EntityDescription
import pytest

import custom_components.energy_telemetry as integration_package
from tests.helpers.repository import INTEGRATION, REPO_ROOT

PACKAGE = "custom_components.energy_telemetry"

# Anything shaped like a tag: "<" then a letter, "/" or "!" (hassfest's own rule is narrower,
# "<[a-z].*?>"; the frontend renders such text as markup either way).
HTML_LIKE = re.compile(r"<\s*[/!]?[a-z]", re.IGNORECASE)
# hassfest: no URLs (use description placeholders), no "'{x}'", no "[%key:...%]" mixed with text.
URL_LIKE = re.compile(
    r"(((ftp|ftps|scp|http|https|mqtt|mqtts|socket|socks5)://|www\.)"
    r"[a-z0-9]+([\-.][a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(/.*)?)",
    re.IGNORECASE,
)
SINGLE_QUOTED_PLACEHOLDER = re.compile(r"'{\w+}'")
COMBINED_REFERENCE = re.compile(r"(.+\[%)|(%\].+)")
TRANSLATION_KEY = re.compile(r"^(?!.+[_-]{2})(?![_-])[a-z0-9-_]+(?<![_-])$")

# Required of a custom integration's manifest (hassfest's custom schema plus HACS's).
MANIFEST_REQUIRED = (
    "domain",
    "name",
    "codeowners",
    "config_flow",
    "documentation",
    "integration_type",
    "iot_class",
    "issue_tracker",
    "requirements",
    "version",
)
IOT_CLASSES = {
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
}
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}
REQUIREMENT = re.compile(r"^(?:--.+\s)?([-_,\.\w\d\[\]]+)(==|>=|<=|~=|!=|<|>|===)*(.*)$")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _strings() -> dict[str, Any]:
    strings: dict[str, Any] = _load(INTEGRATION / "strings.json")
    return strings


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """Yield (dotted path, text) for every string in a translation tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield ".".join(path), node


def _manifests() -> list[Path]:
    """Every manifest.json in the repository, as hassfest's GitHub action finds them."""
    skip = {".git", "node_modules", "__pycache__"}
    return sorted(
        path
        for path in REPO_ROOT.rglob("manifest.json")
        if not any(part in skip or part.startswith((".venv", ".demo")) for part in path.parts)
    )


# --- translations ------------------------------------------------------------------------------


def test_strings_json_equals_english_translation() -> None:
    """Custom integrations load translations/en.json; strings.json is its source, copied as is."""
    english = (INTEGRATION / "translations" / "en.json").read_text(encoding="utf-8")
    assert english == (INTEGRATION / "strings.json").read_text(encoding="utf-8")
    assert sorted(p.name for p in (INTEGRATION / "translations").iterdir()) == [
        "en.json",
        "sv.json",
    ]


@pytest.mark.parametrize("name", ["strings.json", "translations/en.json"])
def test_no_translation_string_breaks_hassfest_rules(name: str) -> None:
    """Every string is plain text hassfest accepts: no HTML, URL, quoted or bad placeholder."""
    problems = []
    for where, text in _leaves(_load(INTEGRATION / name)):
        if not isinstance(text, str) or not text:
            problems.append(f"{where}: not a non-empty string: {text!r}")
            continue
        if HTML_LIKE.search(text):
            problems.append(f"{where}: shaped like HTML: {text!r}")
        if URL_LIKE.search(text):
            problems.append(f"{where}: contains a URL (use a placeholder): {text!r}")
        if text != text.strip():
            problems.append(f"{where}: leading or trailing space")
        if SINGLE_QUOTED_PLACEHOLDER.search(text):
            problems.append(f"{where}: placeholder in single quotes: {text!r}")
        if COMBINED_REFERENCE.search(text):
            problems.append(f"{where}: a [%key:...%] reference mixed with text: {text!r}")
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(text) if field]
        except ValueError as err:
            problems.append(f"{where}: unbalanced braces ({err}): {text!r}")
            continue
        problems.extend(
            f"{where}: placeholder {{{field}}} is not an identifier"
            for field in fields
            if not field.isidentifier()
        )
        if ".state." in f".{where}." and fields:
            problems.append(f"{where}: state strings cannot take placeholders")
    assert not problems, "\n".join(problems)


def test_html_rule_catches_what_hassfest_rejected() -> None:
    """The rule above rejects the string hassfest reported, and accepts ordinary text."""
    assert HTML_LIKE.search("readings come from meters/outbound/<customer ID>/...")
    assert HTML_LIKE.search("see <a href=x>here</a>")
    assert not HTML_LIKE.search("power < 5 kW, energy > 0")


def test_flow_steps_describe_only_their_own_fields() -> None:
    """hassfest: every data_description key of a step is also one of its data keys."""
    strings = _strings()
    problems = []
    for flow in ("config", "options"):
        for step_id, step in strings.get(flow, {}).get("step", {}).items():
            extra = set(step.get("data_description", {})) - set(step.get("data", {}))
            problems.extend(f"{flow}.step.{step_id}: data_description.{key}" for key in extra)
    assert not problems, problems


def test_translation_keys_are_well_formed() -> None:
    """hassfest: entity, selector and state keys are lowercase [a-z0-9-_] slugs."""
    strings = _strings()
    keys = [
        f"entity.{platform}.{key}"
        for platform, entities in strings.get("entity", {}).items()
        for key in entities
    ]
    keys += [f"selector.{key}" for key in strings.get("selector", {})]
    keys += [
        f"selector.{key}.options.{option}"
        for key, value in strings.get("selector", {}).items()
        for option in value.get("options", {})
    ]
    bad = [key for key in keys if not TRANSLATION_KEY.match(key.rsplit(".", 1)[-1])]
    assert not bad, bad


# --- translation keys used by the code ---------------------------------------------------------

EXCEPTION_SUFFIXES = ("Error", "Exception", "Failed", "NotReady", "Invalid")


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _string_constants(node: ast.AST) -> list[str]:
    """The string literals an expression can evaluate to ("a" if x else "b" gives both)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _string_constants(node.body) + _string_constants(node.orelse)
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _string_constants(value)]
    return []


def _kind_of(call_name: str) -> str:
    if call_name == "DeviceInfo":
        return "device"
    if call_name.endswith(("SelectorConfig", "Selector")):
        return "selector"
    if "issue" in call_name.lower():
        return "issues"
    if call_name.endswith(EXCEPTION_SUFFIXES):
        return "exceptions"
    return "entity"


def _code_translation_keys() -> dict[str, set[tuple[str, str]]]:
    """Literal translation_key values in the integration's code, by what they name."""
    found: dict[str, set[tuple[str, str]]] = {}

    def add(kind: str, key: str, where: str) -> None:
        found.setdefault(kind, set()).add((key, where))

    for path in sorted(INTEGRATION.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "translation_key":
                        for key in _string_constants(keyword.value):
                            add(_kind_of(_call_name(node)), key, f"{path.name}:{node.lineno}")
            elif isinstance(node, ast.Dict):
                for dict_key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(dict_key, ast.Constant) and dict_key.value == "translation_key":
                        for key in _string_constants(value):
                            add("entity", key, f"{path.name}:{node.lineno}")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                # _attr_translation_key = "..." in an entity class
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {
                    target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                    for target in targets
                }
                if "_attr_translation_key" in names and node.value is not None:
                    for key in _string_constants(node.value):
                        add("entity", key, f"{path.name}:{node.lineno}")
    return found


def _entity_keys(strings: dict[str, Any]) -> set[str]:
    return {key for entities in strings.get("entity", {}).values() for key in entities}


def test_translation_keys_in_code_exist_in_strings() -> None:
    """Each literal translation_key names an entity, selector, exception or issue string."""
    strings = _strings()
    found = _code_translation_keys()
    assert found.get("entity"), "no entity translation_key found: the scan is broken"
    problems = []
    for key, where in sorted(found.get("entity", set())):
        if key not in _entity_keys(strings):
            problems.append(f"{where}: entity translation_key {key!r} not in strings entity.*")
    for key, where in sorted(found.get("selector", set())):
        if key not in strings.get("selector", {}):
            problems.append(f"{where}: selector translation_key {key!r} not in strings selector")
    for key, where in sorted(found.get("exceptions", set())):
        if "message" not in strings.get("exceptions", {}).get(key, {}):
            problems.append(f"{where}: exception {key!r} has no exceptions.{key}.message")
    for key, where in sorted(found.get("device", set())):
        if "name" not in strings.get("device", {}).get(key, {}):
            problems.append(f"{where}: device translation_key {key!r} has no device.{key}.name")
    for key, where in sorted(found.get("issues", set())):
        issue = strings.get("issues", {}).get(key, {})
        if "title" not in issue or not ({"description", "fix_flow"} & set(issue)):
            problems.append(f"{where}: issue {key!r} needs issues.{key}.title and a description")
    assert not problems, "\n".join(problems)


def _module_descriptions() -> Iterator[tuple[str, EntityDescription]]:
    """Every entity description reachable from the integration modules' globals."""
    package = integration_package
    seen: set[int] = set()

    def walk(value: Any, where: str) -> Iterator[tuple[str, EntityDescription]]:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, EntityDescription):
            yield where, value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, f"{where}[{key!r}]")
        elif isinstance(value, (list, tuple, set, frozenset)):
            for index, item in enumerate(value):
                yield from walk(item, f"{where}[{index}]")

    for info in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            yield from walk(value, f"{info.name.removeprefix(PACKAGE)}.{name}")


def test_entity_descriptions_have_translated_names() -> None:
    """Descriptions built at import time (whose keys the scan above cannot see) too."""
    entity_keys = _entity_keys(_strings())
    descriptions = list(_module_descriptions())
    assert descriptions, "no entity description found: the scan is broken"
    missing = [
        f"{where}: {description.translation_key!r}"
        for where, description in descriptions
        if description.translation_key is not None
        and description.translation_key not in entity_keys
    ]
    assert not missing, missing


def test_every_entity_translation_key_has_an_icon() -> None:
    """icons.json: an mdi icon for each entity translation key, and none for unknown keys."""
    strings = _strings()
    icons = _load(INTEGRATION / "icons.json")
    problems = []
    for platform, entities in strings.get("entity", {}).items():
        platform_icons = icons.get("entity", {}).get(platform, {})
        for key in entities:
            icon = platform_icons.get(key, {}).get("default", "")
            if not icon.startswith("mdi:"):
                problems.append(f"entity.{platform}.{key}: no default mdi icon in icons.json")
    for platform, entities in icons.get("entity", {}).items():
        for key, value in entities.items():
            if key not in strings.get("entity", {}).get(platform, {}):
                problems.append(f"icons.json entity.{platform}.{key}: no such translation key")
            problems.extend(
                f"icons.json entity.{platform}.{key}.{name}: {icon!r} is not an mdi icon"
                for name, icon in _leaves(value)
                if not str(icon).startswith("mdi:")
            )
    assert not problems, "\n".join(problems)


REPAIR_MODULES = ("repairs.py",)
"""Modules whose flows are repair (fix) flows: their strings are under issues.*.fix_flow."""


def _flow_modules(*, repairs: bool) -> list[Path]:
    return [
        path
        for path in sorted(INTEGRATION.rglob("*.py"))
        if (path.name in REPAIR_MODULES) == repairs
    ]


def _literal_keywords(
    function: str, keyword_name: str, *, repairs: bool = False
) -> set[tuple[str, str]]:
    found = set()
    for path in _flow_modules(repairs=repairs):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _call_name(node) == function:
                for keyword in node.keywords:
                    if keyword.arg == keyword_name:
                        found.update(
                            (text, f"{path.name}:{node.lineno}")
                            for text in _string_constants(keyword.value)
                        )
    return found


def test_flow_steps_errors_and_aborts_are_translated() -> None:
    """Literal step ids, errors and abort reasons of the flows have strings."""
    strings = _strings()
    flows = [strings.get("config", {}), strings.get("options", {})]
    steps = {step for flow in flows for step in flow.get("step", {})}
    errors = {error for flow in flows for error in flow.get("error", {})}
    aborts = {reason for flow in flows for reason in flow.get("abort", {})}
    problems = [
        f"{where}: step {step!r} has no strings"
        for function in ("async_show_form", "async_show_menu")
        for step, where in _literal_keywords(function, "step_id")
        if step not in steps
    ]
    problems += [
        f"{where}: abort reason {reason!r} has no strings"
        for function in ("async_abort", "async_update_reload_and_abort")
        for reason, where in _literal_keywords(function, "reason")
        if reason not in aborts
    ]
    for path in sorted(INTEGRATION.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # errors["base"] = "cannot_connect" / errors[CONF_X] = "invalid_key"
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.targets[0].value, ast.Name)
                and node.targets[0].value.id == "errors"
            ):
                problems.extend(
                    f"{path.name}:{node.lineno}: error {error!r} has no strings"
                    for error in _string_constants(node.value)
                    if error not in errors
                )
    assert not problems, "\n".join(problems)


def test_repair_flows_are_translated() -> None:
    """The fix flows' steps have strings under every issue that offers them, and so do the
    errors of the checks they share with the config flow."""
    issues = _strings().get("issues", {})
    fix_flows = [issue["fix_flow"] for issue in issues.values() if "fix_flow" in issue]
    assert fix_flows
    problems = [
        f"{where}: step {step!r} has no strings in issues.{kind}.fix_flow"
        for step, where in _literal_keywords("async_show_form", "step_id", repairs=True)
        for kind, issue in issues.items()
        if "fix_flow" in issue and step not in issue["fix_flow"].get("step", {})
    ]
    config_errors = set(_strings()["config"]["error"])
    for kind, issue in issues.items():
        if "fix_flow" in issue:
            problems.extend(
                f"issues.{kind}.fix_flow.error: {error!r} is not a config flow error"
                for error in issue["fix_flow"].get("error", {})
                if error not in config_errors
            )
    assert not problems, "\n".join(problems)


# --- manifests ---------------------------------------------------------------------------------


def _manifest_sort_key(key: str) -> str:
    return {"domain": ".domain", "name": ".name"}.get(key, key)


@pytest.mark.parametrize("path", _manifests(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_manifest_is_valid_for_a_custom_integration(path: Path) -> None:
    """hassfest's custom-integration rules, for every manifest.json its action would find."""
    manifest = _load(path)
    keys = list(manifest)
    assert keys == sorted(keys, key=_manifest_sort_key), (
        "hassfest: manifest keys must be domain, name, then alphabetical"
    )
    missing = [key for key in MANIFEST_REQUIRED if key not in manifest]
    assert not missing, f"missing keys: {missing}"
    assert manifest["domain"] == path.parent.name
    assert manifest["documentation"].startswith("https://")
    assert not manifest["documentation"].startswith("https://www.home-assistant.io/integrations")
    assert manifest["issue_tracker"].startswith("https://")
    assert manifest["iot_class"] in IOT_CLASSES
    assert manifest["integration_type"] in INTEGRATION_TYPES
    assert isinstance(manifest["config_flow"], bool)
    if manifest["config_flow"]:
        assert (path.parent / "config_flow.py").is_file()
    assert AwesomeVersion(manifest["version"]).strategy in {
        AwesomeVersionStrategy.CALVER,
        AwesomeVersionStrategy.SEMVER,
        AwesomeVersionStrategy.SIMPLEVER,
        AwesomeVersionStrategy.BUILDVER,
        AwesomeVersionStrategy.PEP440,
    }
    assert isinstance(manifest["codeowners"], list)
    for requirement in manifest["requirements"]:
        assert " " not in requirement, requirement
        assert REQUIREMENT.match(requirement), requirement


def test_every_integration_that_registers_services_describes_them() -> None:
    """hassfest: code that registers services needs a services.yaml next to it."""
    registers = re.compile(
        r"(hass\.services\.(register|async_register))|async_register_entity_service"
        r"|async_register_admin_service"
    )
    missing = [
        str(path.parent.relative_to(REPO_ROOT))
        for path in _manifests()
        if any(registers.search(py.read_text()) for py in path.parent.rglob("*.py"))
        and not (path.parent / "services.yaml").is_file()
    ]
    assert not missing, missing


# --- HACS: hacs.json, LICENSE, README, brand images ---------------------------------------------

HACS_JSON_KEYS = {
    "name",
    "content_in_root",
    "country",
    "filename",
    "hacs",
    "hide_default_branch",
    "homeassistant",
    "persistent_directory",
    "render_readme",
    "zip_release",
}


def test_hacs_json() -> None:
    """HACS's schema (only known keys, a name), and the oldest release we support."""
    hacs = _load(REPO_ROOT / "hacs.json")
    assert set(hacs) <= HACS_JSON_KEYS, set(hacs) - HACS_JSON_KEYS
    assert hacs["name"] == _load(INTEGRATION / "manifest.json")["name"]
    assert AwesomeVersion(hacs["homeassistant"]) == AwesomeVersion("2025.4.0")
    assert hacs.get("render_readme") is True
    assert not hacs.get("content_in_root", False)
    assert not hacs.get("zip_release", False) or hacs.get("filename")
    # HACS installs the only folder under custom_components/.
    assert [p.name for p in (REPO_ROOT / "custom_components").iterdir() if p.is_dir()] == [
        INTEGRATION.name
    ]


def test_manifest_has_what_hacs_requires() -> None:
    """HACS: code owners (not empty), documentation, issue tracker and a version."""
    manifest = _load(INTEGRATION / "manifest.json")
    assert manifest["codeowners"], "codeowners must not be empty"
    assert all(owner.startswith("@") for owner in manifest["codeowners"])
    assert manifest["version"]


def test_licence_is_the_mit_text_github_recognises() -> None:
    """HACS requires an OSI licence GitHub detects; pyproject.toml says MIT."""
    text = " ".join((REPO_ROOT / "LICENSE").read_text(encoding="utf-8").split())
    assert text.startswith("MIT License Copyright (c) 2026 Energy Telemetry contributors ")
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    assert 'license = { text = "MIT" }' in (REPO_ROOT / "pyproject.toml").read_text()


def test_readme_shows_the_icon_and_explains_installation() -> None:
    """HACS renders the README: icon at the top, custom repository steps, manual install."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    first_lines = "\n".join(readme.splitlines()[:3])
    assert "custom_components/energy_telemetry/brand/icon.png" in first_lines
    installation = readme.split("## Installation", 1)[1].split("\n## ", 1)[0]
    for step in ("Custom repositories", "Integration", "Restart", "Add integration", "By hand"):
        assert step in installation, step


BRAND = INTEGRATION / "brand"
# name: (width, height) or (None, height) for a landscape logo
BRAND_IMAGES: dict[str, tuple[int | None, int]] = {
    "icon.png": (256, 256),
    "icon@2x.png": (512, 512),
    "logo.png": (None, 128),
    "logo@2x.png": (None, 256),
}


def _image(name: str) -> Any:
    from PIL import Image  # Home Assistant requires Pillow

    with Image.open(BRAND / name) as image:
        image.load()
        return image


@pytest.mark.parametrize("name", sorted(BRAND_IMAGES))
def test_brand_image(name: str) -> None:
    """Home Assistant 2026.3+ serves brand/: sizes, PNG, transparent background."""
    image = _image(name)
    width, height = BRAND_IMAGES[name]
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert image.height == height
    if width is None:
        assert image.width > 2 * image.height, "a logo is landscape"
    else:
        assert image.width == width
    alpha = image.getchannel("A")
    assert alpha.getbbox() == (0, 0, image.width, image.height), "trimmed: no empty border"
    assert alpha.getpixel((0, 0)) == 0, "transparent background (rounded corner)"
    assert alpha.getpixel((image.width // 8, image.height // 2)) == 255


def test_brand_variants_match_their_light_images() -> None:
    """@2x is twice the size; every dark_ variant has its light image's size."""
    for name in ("icon", "logo"):
        single, double = _image(f"{name}.png"), _image(f"{name}@2x.png")
        assert abs(double.width - 2 * single.width) <= 2
        assert double.height == 2 * single.height
    names = {path.name for path in BRAND.iterdir()}
    allowed = set(BRAND_IMAGES) | {f"dark_{name}" for name in BRAND_IMAGES}
    assert names <= allowed, names - allowed
    for name in names:
        if name.startswith("dark_"):
            assert _image(name).size == _image(name.removeprefix("dark_")).size, name


async def test_home_assistant_finds_the_brand_folder(hass: Any) -> None:
    """2026.3+ serves brand/ (has_branding); older releases load the integration unaffected."""
    from homeassistant.loader import async_get_integration

    integration = await async_get_integration(hass, "energy_telemetry")
    if hasattr(integration, "has_branding"):
        assert integration.has_branding
    # brand/ is not a package, so no release can take it for a platform module.
    assert not (BRAND / "__init__.py").exists()
    assert integration.platforms_exists(["sensor"]) == ["sensor"]
