"""Imports point one way: api -> engine -> messaging/voice -> dispatch -> carriers/media -> store.

A lower layer importing a higher one is how architecture rots quietly; this test makes it
loud. `dialects` and `webhooks` translate and transport and import no other layer but
`store`-free helpers; `api` is imported by nothing but the CLI. The web console sits beside
`api`: it uses the layers below as `api` does, and only the app factory mounts it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "verbal"

# For each layer, the layers it must never import.
FORBIDDEN: dict[str, set[str]] = {
    "store": {
        "api",
        "engine",
        "messaging",
        "voice",
        "media",
        "dispatch",
        "carriers",
        "webhooks",
        "dialects",
        "runtime",
        "cli",
    },
    "webhooks": {
        "api",
        "engine",
        "messaging",
        "voice",
        "media",
        "dispatch",
        "carriers",
        "dialects",
        "runtime",
        "cli",
    },
    "dialects": {
        "api",
        "engine",
        "messaging",
        "voice",
        "media",
        "dispatch",
        "carriers",
        "webhooks",
        "store",
        "runtime",
        "cli",
    },
    # Audio in and out of a call: codecs, RTP, prompts. Knows nothing of calls or protocols.
    "media": {
        "api",
        "engine",
        "messaging",
        "voice",
        "dispatch",
        "carriers",
        "webhooks",
        "dialects",
        "store",
        "runtime",
        "cli",
    },
    "carriers": {"api", "engine", "messaging", "voice", "dispatch", "runtime", "cli"},
    "dispatch": {"api", "engine", "messaging", "voice", "carriers", "runtime", "cli"},
    "messaging": {"api", "engine", "voice", "runtime", "cli"},
    # Calls sit beside messaging: the engine drives both; voice uses carriers and media.
    "voice": {"api", "engine", "messaging", "runtime", "cli"},
    "engine": {"api", "runtime", "cli"},
    "runtime": {"api", "cli"},
    "console": {"api", "cli"},
}
# The one module outside the console that may import it: the app factory mounts it.
CONSOLE_MOUNT = PACKAGE / "api" / "app.py"


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "verbal":
            names = [f"verbal.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "verbal" and len(parts) > 1:
                layers.add(parts[1])
    return layers


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def test_no_layer_imports_a_layer_above_it() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        layer = layer_of(path)
        for imported in imported_layers(path) & FORBIDDEN.get(layer, set()):
            violations.append(f"{path.relative_to(PACKAGE)} imports verbal.{imported}")
    assert violations == []


def test_the_check_sees_real_imports() -> None:
    # Guard against the test passing because it parses nothing.
    assert "store" in imported_layers(PACKAGE / "messaging" / "service.py")
    assert "messaging" in imported_layers(PACKAGE / "api" / "twilio.py")


def test_only_the_app_factory_imports_the_console() -> None:
    importers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if layer_of(path) != "console" and "console" in imported_layers(path)
    }
    assert importers == {CONSOLE_MOUNT.relative_to(PACKAGE).as_posix()}
