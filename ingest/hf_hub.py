"""Reaching the Hugging Face hub, or knowing quickly that we can't.

huggingface_hub retries a dead network for ~23 s before failing with a long traceback; here
one short TCP probe (or the offline flags, read at call time) decides, and a failure becomes
one line saying how to ingest the dataset offline.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Iterator
from urllib.parse import urlparse

from ingest.source import SourceError
from lake import errors

_TRUE = {"1", "true", "yes", "on"}
_PROBE_TIMEOUT_S = 3.0


def _env_true(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return name
    return None


def _hub_endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _probe_hub() -> str | None:
    """None when a TCP connection to the hub opens within a few seconds, else why not."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # behind a proxy a direct connect proves nothing: let the hub client try
    host, port = _hub_endpoint()
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{host}: {err.strerror or err}")

    # getaddrinfo has no timeout of its own: a thread bounds a hanging DNS lookup too.
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_S + 1.0)
    return outcome[0] if outcome else f"{host}: no answer in {_PROBE_TIMEOUT_S:.0f} s"


def offline_reason() -> str | None:
    """Why the hub should not be contacted now, or None when it looks reachable."""
    flag = _env_true("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    if flag:
        return f"{flag}=1 is set"
    reason = _probe_hub()
    return f"no network: {reason}" if reason else None


@contextlib.contextmanager
def forced_offline() -> Iterator[None]:
    """datasets/huggingface_hub read the offline flags at import; set them for one load."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def _dataset_name_for(hf_id: str) -> str:
    """The `dataset=` name a user would type for this hub id (a preset's name when one exists)."""
    from ingest.sources import PRESETS  # lazily: ingest.sources imports this module

    for name, (source, options) in PRESETS.items():
        if source == "hf" and options.get("hf_id") == hf_id:
            return name
    return "NAME"


def offline_error(hf_id: str, reason: str) -> SourceError:
    name = _dataset_name_for(hf_id)
    how = f"`just ingest dataset={name}`" if name != "NAME" else f"`just ingest dataset=NAME source=hf hf_id={hf_id}`"
    return SourceError(
        f"cannot reach the Hugging Face hub for {hf_id!r} ({reason}): on a connected machine run "
        f"{how} there and copy data/, or download the audio and run "
        f"`just ingest dataset={name} source=folder path=DIR`"
    )


def one_line(err: BaseException, limit: int = 240) -> str:
    """The error and its root cause ("An error occurred while generating…" alone says nothing)."""
    text = errors.one_line(err, limit)
    if "torchcodec" in text:
        text += "; pip install torchcodec, or ingest the directory with source=folder"
    return text


def is_network_error(err: BaseException) -> bool:
    names = {cls.__name__ for cls in type(err).__mro__}
    return bool(names & {"ConnectionError", "TimeoutError", "ConnectError", "ConnectTimeout",
                         "OfflineModeIsEnabled", "LocalEntryNotFoundError"}) or any(
        "Timeout" in n or "Connection" in n for n in names)
