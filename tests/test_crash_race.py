"""The crash-and-race check (bench/crash_race.py) in a small size: real SIGKILLs and concurrent jobs."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "crash_race.py"


@pytest.fixture(scope="module")
def crash_race():
    spec = importlib.util.spec_from_file_location("crash_race", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash_race"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_kills_and_concurrent_embeds_leave_the_undisturbed_tables(crash_race, tmp_path):
    outcome = crash_race.check(crash_race.CrashConfig(kills=2, clips=12, seconds=1.0, seed=3), tmp_path)
    assert not outcome.failures, "\n".join(outcome.failures)
    assert len(outcome.lines) == 1 + 2 + 2
