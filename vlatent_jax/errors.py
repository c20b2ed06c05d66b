"""Errors every layer raises (row 1 of docs/layout.md: imports nothing of the package)."""

from __future__ import annotations


class ConfigError(ValueError):
  """A configuration value is invalid; the message names the key."""


def require(ok: bool, key: str, message: str) -> None:
  """Raises ConfigError naming `key` unless `ok`."""
  if not ok:
    raise ConfigError(f"config key '{key}': {message}")
