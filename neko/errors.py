"""Errors that reach the user as one line, naming the file and the record that caused them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class NekoError(Exception):
    """Base class of the errors that the CLI prints as one line and turns into exit code 2."""


class InputError(NekoError):
    """Bad user input: names the file and the 1-based line or record number where it was found."""

    def __init__(self, path: str, where: int | None, message: str, *, unit: str = "line") -> None:
        self.path = str(path)
        self.where = where
        self.message = message
        self.unit = unit
        location = f"{self.path}:{where}" if where is not None else self.path
        super().__init__(
            f"{location}: {message}" if unit == "line" else f"{self.path} ({unit} {where}): {message}"
        )


class InputWarning(UserWarning):
    """Suspicious but valid input (an empty file, empty hypotheses, NaN scores, repeated ids); the CLI
    prints each as one ``warning:`` line on stderr and goes on."""


class ConfigError(NekoError):
    """A configuration value that cannot be used; the message names the key and the valid choices."""


def unknown_choice(kind: str, name: str, choices) -> ConfigError:
    """The error for a registry lookup that failed, listing the valid names."""
    return ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(choices))}")


def unknown_keys(data: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """The keys of ``data`` outside ``known``, sorted: the one test behind every unknown-key message."""
    return sorted(set(data) - set(known))


def check_keys(data: Mapping[str, Any], known: Iterable[str], what: str) -> None:
    """Raise a ConfigError naming the keys of ``data`` outside ``known``, and the valid keys."""
    valid = sorted(known)
    unknown = unknown_keys(data, valid)
    if unknown:
        raise ConfigError(f"{what}: unknown keys {unknown}; valid keys: {', '.join(valid)}")
