"""The protocol package and the pure totals and hours load with Home Assistant blocked."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

from custom_components.energy_telemetry import energy_hours, protocol, totals

# --- no Home Assistant in the protocol modules ----------------------------------------------

_STANDALONE = """
import importlib, importlib.abc, importlib.util, os, pkgutil, sys

class BlockHomeAssistant(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "homeassistant" or name.startswith("homeassistant."):
            raise ImportError(f"blocked import of {name}")
        return None

sys.meta_path.insert(0, BlockHomeAssistant())
try:
    import homeassistant.core
except ImportError:
    pass
else:
    raise SystemExit("the import blocker does not work")

def load(name, path):
    if os.path.isdir(path):
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(path, "__init__.py"), submodule_search_locations=[path]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    print("module", name)
    if os.path.isdir(path):
        for info in pkgutil.iter_modules([path]):
            load(f"{name}.{info.name}", os.path.join(path, info.name if info.ispkg else info.name + ".py"))

for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    load(name, path)

leaked = sorted(m for m in sys.modules if m.split(".")[0] == "homeassistant")
assert not leaked, leaked
guard = sys.modules["standalone_totals"].TotalGuard()
guard.seed(None, None)
assert guard.accept(1.0, 1.0)
novacore = sys.modules["standalone_protocol.novacore"]
common = sys.modules["standalone_protocol.common"]
parsed = novacore.parse_event('{"type": "pv", "W": -5}', common.ParseStats())
assert parsed[0].values == {"W": -5.0}
signs = sys.modules["standalone_protocol.novacore.signs"].SignEngine()
assert signs.observe("b", "battery", 1.0, 5.0, {"total_charge_Wh": 1.0}) is None
assert signs.factor("b", "battery") == 1
reading = sys.modules["standalone_protocol.ainsite"].parse_payload(
    b'{"smarteo_payload_schema_version": 1, "register_id": 2, "meter_reading": 5,'
    b' "data_timestamp_utc": "2025-01-01T00:00:00Z"}'
)
assert reading.value == 5.0
print("standalone ok")
"""


def test_protocol_modules_do_not_import_homeassistant() -> None:
    """Every module of the protocol package, and the pure totals and hours, load without HA."""
    package = Path(protocol.__file__).parent
    files = {
        "standalone_protocol": package,
        "standalone_totals": Path(totals.__file__),
        "standalone_energy_hours": Path(energy_hours.__file__),
    }
    args = [str(item) for name, path in files.items() for item in (name, path)]
    result = subprocess.run(
        [sys.executable, "-I", "-c", _STANDALONE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "standalone ok"
    # Every module of the package was loaded with Home Assistant blocked.
    expected = {
        "module standalone_protocol."
        + ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
    }
    expected = {line.removesuffix(".__init__") for line in expected}
    assert set(lines[:-1]) == expected | {
        "module standalone_protocol",
        "module standalone_totals",
        "module standalone_energy_hours",
    }
    assert any("ainsite.stream" in line for line in lines)
