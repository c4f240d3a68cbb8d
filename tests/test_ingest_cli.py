"""The ingest registry and command line."""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import ingest
from conftest import write_clip
from ingest.sources import PRESETS, SOURCES


def test_every_source_module_is_registered():
    modules = {m.name for m in pkgutil.iter_modules(ingest.__path__)}
    sources = {name for name in modules if hasattr(importlib.import_module(f"ingest.{name}"), "items")}
    assert sources == set(SOURCES), "a source module exists that the registry does not list (or vice versa)"
    for name, module in SOURCES.items():
        assert module.__doc__ and len(module.__doc__) > 80, f"ingest/{name}.py needs a docstring"
        assert callable(module.fingerprint) and hasattr(module, "Config")
    for dataset, (source, _) in PRESETS.items():
        assert source in SOURCES


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, needle", [
    (["dataset=x", "source=folder", "path=/nonexistent/dir"], "path=/nonexistent/dir: not a directory"),
    (["dataset=x", "source=nope"], "source='nope' is not a known source"),
    (["dataset=mine"], "pass source=folder path=DIR"),
    (["dataset=x", "source=folder", "pth=."], "unknown key pth="),
    (["dataset=x", "source=folder", "path=.", "workers=two"], "workers='two': expected int"),
    (["dataset=../up", "source=folder", "path=."], "dataset='../up' is not a valid name"),
])
def test_bad_arguments_fail_with_one_line_naming_the_key(args, needle):
    done = run_cli(*args)
    assert done.returncode != 0
    assert needle in done.stderr.replace("\n", " "), done.stderr
    assert "Traceback" not in done.stderr


def test_cli_ingests_and_then_says_nothing_changed(tmp_path):
    write_clip(tmp_path / "in" / "a.wav")
    first = run_cli("dataset=cli", "source=folder", f"path={tmp_path / 'in'}")
    assert first.returncode == 0, first.stderr
    assert "1 clips" in first.stderr and "wrote" in first.stderr
    second = run_cli("dataset=cli", "source=folder", f"path={tmp_path / 'in'}")
    assert second.returncode == 0 and "nothing written" in second.stderr
