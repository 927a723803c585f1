"""The installed distribution's version: one number, kept in pyproject.toml."""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("switchover")
