"""Typed values in the command palette: ``tau 0.03``, ``r 12``, ``layer 5``, ``a wiki``.

The system commands offer one entry per preset (every r, the τ ladder); a
user who knows the value wants to type it. This provider reads the query as
``NAME VALUE`` and offers one command that sets exactly that value; the app
clamps it like a key press would, and says when it did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from textual.command import Hit, Hits, Provider

#: Names a user may type for each setting (lower case).
NAMES = {
    "r": ("r", "budget"),
    "tau": ("tau", "τ", "t"),
    "layer": ("layer", "l"),
    "a": ("a",),
    "b": ("b",),
}
_QUERY = re.compile(r"^\s*(\S+)\s*[= ]\s*(\S.*?)\s*$")


@dataclass(frozen=True)
class TypedCommand:
    """What a query asks for: the setting and its value, already parsed."""

    setting: str
    value: int | float | str

    def describe(self) -> str:
        names = {"r": "r", "tau": "τ", "layer": "layer", "a": "dataset A", "b": "dataset B"}
        return f"Set {names[self.setting]} = {self.value}"


def parse(query: str) -> TypedCommand | None:
    """``"tau 0.03"`` → ``TypedCommand("tau", 0.03)``; ``None`` when the query is not one.

    r and layer take integers, τ a float in (0, 1); A and B take a bundle name.
    """
    match = _QUERY.match(query)
    if match is None:
        return None
    name, raw = match.group(1).lower(), match.group(2)
    setting = next((key for key, names in NAMES.items() if name in names), None)
    if setting is None:
        return None
    try:
        if setting in ("r", "layer"):
            return TypedCommand(setting, int(raw))
        if setting == "tau":
            tau = float(raw)
            return TypedCommand(setting, tau) if 0 < tau < 1 else None
    except ValueError:
        return None
    return TypedCommand(setting, raw)


class TypedValues(Provider):
    """One hit for a ``NAME VALUE`` query; nothing for anything else."""

    async def search(self, query: str) -> Hits:
        command = parse(query)
        if command is None:
            return
        action = self._action(command)
        if action is None:
            return
        yield Hit(1.0, command.describe(), action, help="typed value")

    def _action(self, command: TypedCommand) -> Callable[[], None] | None:
        app = self.app
        if command.setting == "r":
            return lambda: app.set_r(int(command.value))
        if command.setting == "tau":
            return lambda: app.set_tau(float(command.value))
        if command.setting == "layer":
            return lambda: app.set_layer(int(command.value))
        labels = list(app.selection.labels)
        wanted = str(command.value).lower()
        index = next((i for i, label in enumerate(labels) if label.lower() == wanted), None)
        if index is None:
            index = next((i for i, label in enumerate(labels) if wanted in label.lower()), None)
        if index is None:
            return None
        return lambda: app.action_set_dataset(command.setting, index)
