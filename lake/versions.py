"""Installed package versions, recorded with every backbone and run so a number can be traced."""
from __future__ import annotations

import platform
from importlib import metadata


def package_versions(*names: str, python: bool = False) -> dict[str, str]:
    """Versions of the named distributions that are installed; missing ones are left out."""
    found = {"python": platform.python_version()} if python else {}
    for name in dict.fromkeys(names):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
