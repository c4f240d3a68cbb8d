"""A local model dir's weights are hashed once per change, not once per embed job."""
from __future__ import annotations

import hashlib
import os

from embed.hf_source import resolve, revision


def test_a_local_dirs_revision_is_its_weights_sha256_read_again_only_when_a_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOLAKE_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    a, b = model / "model.safetensors", model / "extra.bin"
    a.write_bytes(b"weights a" * 1000)
    b.write_bytes(b"weights b")
    source = resolve(f"hf:{model}")
    first = revision(source, None, remote_code=False)
    assert first == "sha256:" + hashlib.sha256(b.read_bytes() + a.read_bytes()).hexdigest()  # as recorded before

    stat = a.stat()
    with open(a, "r+b") as fh:  # same size, same inode, mtime put back: only a re-read could tell
        fh.write(b"W")
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert revision(source, None, remote_code=False) == first, "the next job read the weights again"

    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a real rewrite moves mtime
    assert revision(source, None, remote_code=False) == (
        "sha256:" + hashlib.sha256(b.read_bytes() + a.read_bytes()).hexdigest()) != first
