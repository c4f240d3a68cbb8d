"""Optional packages a backbone needs (pip extras), imported only when that backbone loads.

A missing or broken package is refused in one line that names the extra to install, never as an
ImportError traceback from deep inside the package.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from embed.hf_source import BackboneUnavailable


def require(module: str, backbone: str, extra: str):
    """`import module`, or BackboneUnavailable naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = (err.name or module).split(".")[0]
        raise BackboneUnavailable(
            f"{backbone} needs the {missing} package, which is not installed: pip install -e \".[{extra}]\" "
            f"(from PyPI: pip install \"audiolake[{extra}]\")") from None
    except (ImportError, OSError, RuntimeError) as err:  # installed, but it (or a dependency) cannot load
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise BackboneUnavailable(
            f"{backbone}: importing {module} failed ({type(err).__name__}: {first}); a compiled dependency "
            "(torchaudio, torchvision) built for another torch is the usual cause: install the builds matching "
            f"torch {torch_version()} (see .ci/run for a CPU-only torch)") from None


def torch_version() -> str:
    import torch

    return torch.__version__


def import_muq():
    """The `muq` package, which also imports MuQ-MuLan's text side, and with it `x_clip.tokenizer`.

    x_clip's package `__init__` imports its image models, which import torchvision, and PyPI's
    torchvision does not load beside a CPU-only torch (nor is it installed where it cannot). MuQ
    needs only x_clip's tokenizer module, which imports no torchvision: when torchvision cannot
    be imported, x_clip is registered as a bare package, so its `__init__` is skipped and
    `x_clip.tokenizer` is imported from the installed files, unchanged.
    """
    if "x_clip" not in sys.modules and not _imports("torchvision"):
        spec = importlib.util.find_spec("x_clip")
        if spec is not None and spec.submodule_search_locations:
            package = types.ModuleType("x_clip")
            package.__path__ = list(spec.submodule_search_locations)
            package.__spec__ = spec
            sys.modules["x_clip"] = package
    return require("muq", "muq", "music")


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:  # absent, or present but built for another torch
        return False
