"""Every translation in translations/ has exactly the strings of strings.json.

Home Assistant falls back to English key by key, so a key missing from a translation shows up in
English, an extra key is dead text nobody reviews, and a placeholder that differs from English
either shows up as "{name}" to the user or makes the frontend drop the string. English itself is
translations/en.json, which must stay a copy of strings.json.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

import pytest

ROOT = next(
    folder
    for folder in Path(__file__).resolve().parents
    if (folder / "custom_components" / "energy_telemetry").is_dir()
)
INTEGRATION = ROOT / "custom_components" / "energy_telemetry"
TRANSLATIONS = INTEGRATION / "translations"
OTHER_LANGUAGES = sorted(
    path.name for path in TRANSLATIONS.glob("*.json") if path.name != "en.json"
)
# hassfest rejects text shaped like a tag; the frontend would render it as markup.
HTML_LIKE = re.compile(r"<\s*[/!]?[a-z]", re.IGNORECASE)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Yield (dotted path, value) for every leaf of a translation tree; {} is a leaf too."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield ".".join(path), node


def _placeholders(text: str) -> set[str] | str:
    """The {placeholder} names of a string, or why they cannot be read."""
    try:
        return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as err:
        return f"unbalanced braces ({err})"


def translation_problems(english: dict[str, Any], translation: dict[str, Any]) -> list[str]:
    """What a translation lacks, has too much of, or gets wrong compared with English."""
    source = dict(_leaves(english))
    target = dict(_leaves(translation))
    problems = [f"missing key: {key}" for key in source if key not in target]
    problems += [f"extra key: {key}" for key in target if key not in source]
    for key, text in target.items():
        if key not in source:
            continue
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{key}: not a non-empty string: {text!r}")
            continue
        if text != text.strip():
            problems.append(f"{key}: leading or trailing space: {text!r}")
        if HTML_LIKE.search(text):
            problems.append(f"{key}: shaped like HTML: {text!r}")
        breaks, english_breaks = text.count("\n"), source[key].count("\n")
        if breaks != english_breaks:
            problems.append(f"{key}: {breaks} line breaks where English has {english_breaks}")
        wanted, found = _placeholders(source[key]), _placeholders(text)
        if isinstance(found, str):
            problems.append(f"{key}: {found}: {text!r}")
        elif wanted != found:
            missing = ", ".join(f"{{{name}}}" for name in sorted(set(wanted) - found)) or "none"
            extra = ", ".join(f"{{{name}}}" for name in sorted(found - set(wanted))) or "none"
            problems.append(
                f"{key}: placeholders differ from English (missing: {missing}; extra: {extra})"
            )
    return problems


def test_english_translation_is_strings_json() -> None:
    """translations/en.json is what Home Assistant loads for English: a copy of strings.json."""
    assert _load(TRANSLATIONS / "en.json") == _load(INTEGRATION / "strings.json")


def test_there_is_a_translation_to_check() -> None:
    """The parametrised test below would pass vacuously without one."""
    assert OTHER_LANGUAGES, "no translation besides en.json found"


@pytest.mark.parametrize("name", OTHER_LANGUAGES)
def test_translation_matches_english(name: str) -> None:
    """Same keys as strings.json (recursively), and in every string the same placeholders and
    line breaks, no markup, nothing empty."""
    problems = translation_problems(_load(INTEGRATION / "strings.json"), _load(TRANSLATIONS / name))
    assert not problems, f"translations/{name} differs from strings.json:\n" + "\n".join(problems)


def test_the_check_reports_what_is_wrong() -> None:
    """A removed key, an added key, a lost or renamed placeholder, an empty string, a lost line
    break and markup are all reported by name."""
    english = {
        "config": {
            "step": {"user": {"title": "Reconfigure {name}", "description": "Hello {who}"}},
            "error": {"cannot_connect": "Failed to connect"},
        }
    }
    translation = {
        "config": {
            "step": {"user": {"title": "Konfigurera om", "description": "Hej {vem}"}},
            "error": {"unknown": "Oväntat fel"},
            "abort": {"already_configured": ""},
        }
    }
    problems = translation_problems(english, translation)
    assert "missing key: config.error.cannot_connect" in problems
    assert "extra key: config.error.unknown" in problems
    assert "extra key: config.abort.already_configured" in problems
    assert (
        "config.step.user.title: placeholders differ from English (missing: {name}; extra: none)"
        in problems
    )
    assert (
        "config.step.user.description: placeholders differ from English"
        " (missing: {who}; extra: {vem})" in problems
    )
    assert translation_problems(english, english) == []
    assert translation_problems({"a": "One.\n\nTwo."}, {"a": "Ett. Två. <b>Tre</b> "}) == [
        "a: leading or trailing space: 'Ett. Två. <b>Tre</b> '",
        "a: shaped like HTML: 'Ett. Två. <b>Tre</b> '",
        "a: 0 line breaks where English has 2",
    ]
    assert translation_problems({"a": "Plug"}, {"a": "  "}) == ["a: not a non-empty string: '  '"]
    assert translation_problems({"a": {"b": "Plug"}}, {"a": "Kontakt"}) == [
        "missing key: a.b",
        "extra key: a",
    ]
