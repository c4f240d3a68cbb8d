"""Read a TensorFlow-1 checkpoint (tensor bundle) without TensorFlow or protobuf.

A TF "V2" checkpoint is two files: ``<prefix>.index`` and ``<prefix>.data-00000-of-00001``.

The ``.index`` file is a LevelDB-format SSTable:

* It ends with a 48-byte footer: two ``BlockHandle`` s (metaindex, index), each a pair of
  varints ``(offset, size)``, zero padding up to 40 bytes, then the 8-byte little-endian
  magic number ``0xdb4775248b80fb57``.
* The index block maps a separator key to the ``BlockHandle`` of each data block.
* Every block is followed by a 5-byte trailer (1 byte compression type, 4 bytes CRC32C)
  that the handle's ``size`` does not count. TF writes bundles uncompressed (type 0).
* Inside a block, entries are prefix-compressed: ``varint shared, varint non_shared,
  varint value_len, key[shared:] bytes, value bytes``; the key is the previous key's
  first ``shared`` bytes plus the new suffix. The block ends with a ``uint32`` restart
  array and its ``uint32`` length, which a sequential scan can ignore.

Keys are variable names. The empty key holds a ``BundleHeaderProto`` (skipped); every
other value is a ``tensorflow.BundleEntryProto``:
``dtype=1 (enum), shape=2 (TensorShapeProto: repeated dim=2 {size=1}), shard_id=3,
offset=4, size=5, crc32c=6 (fixed32)``. ``offset``/``size`` locate the raw little-endian
tensor bytes in the ``.data`` shard.

Integrity is not re-checked here with the per-tensor CRC32C: the caller verifies the
sha256 of the whole wheel the files come from, which is stronger and cheaper in Python.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48
_DT_FLOAT = 1


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, next position)."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Split a protobuf message into (field number, value) pairs, in wire order.

    Only the wire types a BundleEntryProto uses are handled: varint (0),
    length-delimited (2), fixed32 (5); fixed64 (1) is accepted for completeness.
    """
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _parse_entry(buf: bytes) -> dict:
    """Decode a BundleEntryProto into dtype, shape, shard_id, offset, size."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0}
    for number, value in _proto_fields(buf):
        if number == 1:
            entry["dtype"] = value
        elif number == 2:
            for dim_no, dim in _proto_fields(value):
                if dim_no == 2:  # TensorShapeProto.dim -> Dim.size (field 1)
                    size = dict(_proto_fields(dim)).get(1, 0)
                    entry["shape"].append(size)
        elif number in (3, 4, 5):
            entry[{3: "shard_id", 4: "offset", 5: "size"}[number]] = value
    return entry


def _block_entries(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Return all (key, value) pairs of one SSTable block."""
    if table[offset + size] != 0:
        raise ValueError("compressed SSTable blocks are not supported")
    block = table[offset : offset + size]
    (num_restarts,) = struct.unpack_from("<I", block, size - 4)
    end = size - 4 - 4 * num_restarts  # entries stop where the restart array starts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def read_index(index: bytes) -> dict[str, dict]:
    """Parse a ``.index`` SSTable into {variable name: BundleEntryProto fields}."""
    footer = index[-_FOOTER_LEN:]
    if struct.unpack("<Q", footer[-8:])[0] != _MAGIC:
        raise ValueError("not a LevelDB table: bad magic number")
    _, pos = _varint(footer, 0)  # metaindex offset (unused: bundles have no meta blocks)
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    entries: dict[str, dict] = {}
    for _, handle in _block_entries(index, index_offset, index_size):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block_entries(index, offset, size):
            if key:  # the empty key is the BundleHeaderProto
                entries[key.decode()] = _parse_entry(value)
    return entries


def read_bundle(index: bytes, data: bytes, skip_optimizer: bool = True) -> dict[str, np.ndarray]:
    """Decode every float32 tensor of a single-shard bundle into numpy arrays."""
    tensors: dict[str, np.ndarray] = {}
    for name, entry in read_index(index).items():
        if skip_optimizer and ("Adam" in name or name.startswith("beta1_power") or name.startswith("beta2_power")):
            continue
        if entry["shard_id"] != 0:
            raise ValueError(f"{name}: multi-shard bundles are not supported")
        if entry["dtype"] != _DT_FLOAT:
            raise ValueError(f"{name}: only float32 tensors are supported (dtype {entry['dtype']})")
        raw = data[entry["offset"] : entry["offset"] + entry["size"]]
        tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(entry["shape"]).astype(np.float32)
    return tensors


def read_checkpoint_from_wheel(wheel: Path, model: str) -> dict[str, np.ndarray]:
    """Load ``musicnn/<model>/`` weights straight out of the musicnn wheel (a zip)."""
    prefix = f"musicnn/{model}/"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        if prefix + ".index" not in names:
            raise KeyError(f"{model!r} has no checkpoint in {wheel.name}")
        index = zf.read(prefix + ".index")
        data = zf.read(prefix + ".data-00000-of-00001")
    return read_bundle(index, data)
