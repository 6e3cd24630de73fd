"""Every package the integration imports is declared: by manifest.json or by Home Assistant itself."""

from __future__ import annotations

import ast
from importlib import metadata
import json
import re
import sys

from tests.helpers.repository import INTEGRATION


def _name(requirement: str) -> str:
    """Return the normalised distribution name of a requirement string."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _imported_modules() -> set[str]:
    modules: set[str] = set()
    for path in INTEGRATION.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"homeassistant", "__future__"}


def test_every_import_is_a_declared_requirement() -> None:
    """A package Home Assistant only brings along by chance must be in manifest.json.

    voluptuous is the example: Home Assistant 2026.x validates with probatio and installs
    voluptuous only because two of its own dependencies still need it.
    """
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    declared = {_name(requirement) for requirement in manifest["requirements"]}
    core = {
        _name(requirement)
        for requirement in metadata.requires("homeassistant") or []
        if "extra ==" not in requirement
    }
    distributions = metadata.packages_distributions()
    undeclared = {}
    for module in sorted(_imported_modules()):
        names = {_name(name) for name in distributions.get(module, [module])}
        if not names & (declared | core):
            undeclared[module] = sorted(names)
    assert not undeclared, (
        f"imported but not required by manifest.json or Home Assistant: {undeclared}"
    )


def test_declared_requirements_are_installed() -> None:
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    for requirement in manifest["requirements"]:
        metadata.version(_name(requirement))
    assert "voluptuous" in {_name(requirement) for requirement in manifest["requirements"]}
