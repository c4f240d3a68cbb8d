"""Any Hugging Face audio dataset, by hub id or from a local copy, stored as its original bytes.

What it reads: one split of a dataset from the Hugging Face hub (`hf_id=org/name`, with
`config_name=`, `revision=`, `split=`), or a local directory given as `hf_id=DIR`:
- a directory written by `Dataset.save_to_disk` (has `state.json`) or
  `DatasetDict.save_to_disk` (has `dataset_dict.json`; `split=` picks the split), read with
  `datasets.load_from_disk`;
- any other directory (parquet files, or an audiofolder of audio files + metadata.csv) goes to
  `datasets.load_dataset(DIR)`, which needs no network. Note: datasets ≥ 4 builds an
  audiofolder through torchcodec (not a dependency here); for a plain directory of audio files
  the `folder` source is the direct route.

Audio: the audio column (`audio_column=`, default `audio`) is cast to
`datasets.Audio(decode=False)`, so every row yields the ORIGINAL encoded file
(`{"bytes": ..., "path": ...}`), never a decoded array: the lake keeps byte-identical audio
and its sha256. When a row holds only a path (audio not embedded), the local file is read. The
format is the path's extension, else sniffed from the magic bytes (RIFF→wav, fLaC→flac,
OggS→ogg, ID3/MPEG sync→mp3, ADTS→aac, `ftyp`→m4a, FORM→aiff).

Rows: track id from `id_column=`, else `<hf_id with / → __>_<split>_<index:06d>` (a local
directory contributes its folder name), e.g. `sanchit-gandhi__gtzan_train_000042`; `source`
is `hf:<hf_id>/<split>/<index>`. `label_column=` is copied to `label` as a string (ClassLabel
ints become their names, -1 becomes no label); `culture_mode=constant culture_value=west` or
`culture_mode=column culture_value=COLUMN` fills `culture`; `split` is the `split=` option.
Every other SCALAR column is kept as an extra tracks column (ClassLabel columns as names;
a column named like a tracks identity column, or like a field this source fills, gets an `hf_`
prefix); non-scalar columns (dicts, lists, arrays, raw bytes: e.g. a second audio column or a
word-timing list) are skipped, except a list of strings in a column named `terms`. The audio's
original file name inside the dataset is kept as `hf_audio_path`.

Network: the hub is probed first (a 3 s TCP connect; skipped behind an HTTP proxy). When it
cannot be reached, or `HF_HUB_OFFLINE=1`/`HF_DATASETS_OFFLINE=1` is set (read at call time),
the load runs in datasets' offline mode, so a dataset already in the local HF cache still
loads; otherwise the ingest stops at once with one line saying how to ingest it offline.
`HF_DATASETS_CACHE`, when set, is honoured at call time too. Streaming always needs the hub.

Fingerprint (what makes a re-ingest a no-op): for a local directory, the size, mtime, ctime
and inode of every file in it (`ingest.source.FileState`) plus the options. For a hub dataset, the options only (hf_id, revision,
config_name, split, limit, column options): a `revision=` commit hash pins the content; with
`revision=none` (the branch head) a re-ingest is a no-op even if the dataset changed on the
hub since, and `force=true` rebuilds.

License: each hub dataset carries its own (see its dataset card: GTZAN, for instance, is a
research collection of copyrighted excerpts); audiolake only copies what the user asks for.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

from ingest.hf_hub import forced_offline, is_network_error, offline_error, offline_reason, one_line
from ingest.probe import AUDIO_EXTENSIONS, sniff_format
from ingest.source import KNOWN_META, SourceError, SourceItem, Skipped, file_state

_IDENTITY = {
    "dataset", "track_id", "shard", "key", "offset", "nbytes", "format", "sha256",
    "duration_s", "sample_rate", "channels", "source",
}
_STRING_META = {"split", "label", "culture", "affect_label", "speaker_id", "group_id", "text", "title"}


@dataclass
class Config:
    hf_id: str
    split: str = "train"
    streaming: bool = False
    limit: int = 0  # 0: all rows
    label_column: str | None = None
    culture_mode: Literal["none", "constant", "column"] = "none"
    culture_value: str | None = None  # the constant, or the column name when culture_mode=column
    id_column: str | None = None
    audio_column: str = "audio"
    revision: str | None = None
    config_name: str | None = None

    def __post_init__(self) -> None:
        if not str(self.hf_id).strip():
            raise ValueError("hf_id= is empty: pass a hub id like org/name or a local directory")
        if not str(self.split).strip():
            raise ValueError("split= is empty")
        if self.limit < 0:
            raise ValueError(f"limit={self.limit}: must be 0 (all rows) or more")
        if self.culture_mode == "constant" and not self.culture_value:
            raise ValueError("culture_mode=constant needs culture_value= (the culture of every clip)")
        if self.culture_mode == "column" and not self.culture_value:
            raise ValueError("culture_mode=column needs culture_value= (the name of the culture column)")
        if not self.audio_column:
            raise ValueError("audio_column= is empty")
        for key in ("label_column", "id_column"):
            if getattr(self, key) == self.audio_column:
                raise ValueError(f"{key}={self.audio_column!r} is the audio column")
        if self.culture_mode == "column" and self.culture_value == self.audio_column:
            raise ValueError(f"culture_value={self.audio_column!r} is the audio column")
        self._loaded: tuple[Any, bool] | None = None  # (dataset, iterable?) once loaded


# --- where the dataset lives ------------------------------------------------------------------


def local_dir(cfg: Config) -> Path | None:
    path = Path(cfg.hf_id).expanduser()
    return path if path.is_dir() else None


def _saved_with_save_to_disk(directory: Path) -> bool:
    return (directory / "state.json").is_file() or (directory / "dataset_dict.json").is_file()


def _id_stem(cfg: Config) -> str:
    directory = local_dir(cfg)
    name = directory.resolve().name if directory else cfg.hf_id
    return name.strip("/").replace("/", "__")


# --- loading ----------------------------------------------------------------------------------


def _load_kwargs(cfg: Config) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"split": cfg.split, "streaming": cfg.streaming}
    if cfg.config_name:
        kwargs["name"] = cfg.config_name
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    if os.environ.get("HF_DATASETS_CACHE"):
        kwargs["cache_dir"] = os.environ["HF_DATASETS_CACHE"]
    return kwargs


def _load_local(cfg: Config, directory: Path) -> Any:
    import datasets

    if _saved_with_save_to_disk(directory):
        try:
            loaded = datasets.load_from_disk(str(directory))
        except Exception as err:
            raise SourceError(f"hf_id={cfg.hf_id}: cannot read the saved dataset: {one_line(err)}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if cfg.split not in loaded:
                raise SourceError(f"hf_id={cfg.hf_id}: no split {cfg.split!r} (has: {', '.join(loaded)}); pass split=")
            loaded = loaded[cfg.split]
        return loaded.to_iterable_dataset() if cfg.streaming else loaded
    kwargs = _load_kwargs(cfg)
    kwargs.pop("revision", None)
    try:
        return datasets.load_dataset(str(directory), **kwargs)
    except Exception as err:
        raise SourceError(f"hf_id={cfg.hf_id}: cannot load the local directory as a dataset: {one_line(err)}") from None


def _load_hub(cfg: Config) -> Any:
    import datasets

    kwargs = _load_kwargs(cfg)
    reason = offline_reason()
    if reason is not None:
        if cfg.streaming:
            raise offline_error(cfg.hf_id, f"{reason}; streaming=true needs the hub")
        with forced_offline():
            try:
                return datasets.load_dataset(cfg.hf_id, **kwargs)
            except Exception:  # not in the local cache (or a different split/config is)
                raise offline_error(cfg.hf_id, f"{reason}, and it is not in the local Hugging Face cache") from None
    try:
        return datasets.load_dataset(cfg.hf_id, **kwargs)
    except Exception as err:
        if type(err).__name__ == "DatasetNotFoundError":
            raise SourceError(f"hf_id={cfg.hf_id!r}: no such dataset on the Hugging Face hub, or it is gated/"
                              f"private (log in or set HF_TOKEN): {one_line(err)}") from None
        if is_network_error(err):
            raise offline_error(cfg.hf_id, one_line(err, 160)) from None
        raise SourceError(f"cannot load Hugging Face dataset {cfg.hf_id!r} (split={cfg.split}"
                          f"{', config_name=' + cfg.config_name if cfg.config_name else ''}): {one_line(err)}") from None


def _column_names(dataset: Any) -> list[str] | None:
    names = getattr(dataset, "column_names", None)
    if names is None and getattr(dataset, "features", None) is not None:
        names = list(dataset.features)
    return list(names) if names is not None else None


def load(cfg: Config) -> tuple[Any, bool]:
    """(dataset, iterable?) with the audio column cast to undecoded bytes and the limit applied."""
    if cfg._loaded is not None:
        return cfg._loaded
    import datasets

    directory = local_dir(cfg)
    dataset = _load_local(cfg, directory) if directory else _load_hub(cfg)
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if cfg.split not in dataset:
            raise SourceError(f"hf_id={cfg.hf_id}: no split {cfg.split!r} (has: {', '.join(dataset)}); pass split=")
        dataset = dataset[cfg.split]
    iterable = isinstance(dataset, datasets.IterableDataset)
    columns = _column_names(dataset)
    if columns is not None:
        wanted = [("audio_column", cfg.audio_column), ("label_column", cfg.label_column),
                  ("id_column", cfg.id_column)]
        if cfg.culture_mode == "column":
            wanted.append(("culture_value", cfg.culture_value))
        for key, column in wanted:
            if column is not None and column not in columns:
                raise SourceError(f"{key}={column}: {cfg.hf_id!r} split {cfg.split!r} has no such column "
                                  f"(has: {', '.join(columns)})")
    features = getattr(dataset, "features", None)
    audio_feature = features.get(cfg.audio_column) if features is not None else None
    if isinstance(audio_feature, datasets.Audio):
        # Undecoded: {"bytes", "path"} per row, the file as it was published.
        dataset = dataset.cast_column(cfg.audio_column, datasets.Audio(decode=False))
    elif features is None:  # a stream whose features are not declared: try, rows show the rest
        with contextlib.suppress(Exception):
            dataset = dataset.cast_column(cfg.audio_column, datasets.Audio(decode=False))
    # else: a plain path string or {bytes, path} struct column, read as it is
    if cfg.limit:
        if iterable:
            dataset = dataset.take(cfg.limit)
        else:
            dataset = dataset.select(range(min(cfg.limit, len(dataset))))
    cfg._loaded = (dataset, iterable)
    return cfg._loaded


# --- rows → items -----------------------------------------------------------------------------


def audio_bytes(value: Any) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, original path, why not) from an undecoded audio cell: dict, path string or bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), None, None
    if isinstance(value, str):
        value = {"bytes": None, "path": value}
    if not isinstance(value, dict):
        return None, None, f"audio cell is a {type(value).__name__}, not {{bytes, path}}"
    data, path = value.get("bytes"), value.get("path")
    if data:
        return bytes(data), path, None
    if path and Path(path).expanduser().is_file():
        try:
            return Path(path).expanduser().read_bytes(), path, None
        except OSError as err:
            return None, path, f"cannot read {path}: {err.strerror or err}"
    if path:
        return None, path, f"audio not embedded and {path} is not a local file"
    return None, None, "no audio (bytes and path both empty)"


def _format(path: str | None, data: bytes) -> str | None:
    if path:
        suffix = Path(str(path).split("::")[0]).suffix.lower().lstrip(".")
        if suffix in AUDIO_EXTENSIONS:
            return suffix
    return sniff_format(data)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list, tuple, set, bytes, bytearray)) and not hasattr(value, "shape")


def _typed_meta(key: str, value: Any) -> Any:
    """A value for a known tracks column in its schema type; raises ValueError when impossible."""
    if value is None:
        return None
    if key in _STRING_META:
        return str(value)
    if key == "score":
        if isinstance(value, bool):
            raise ValueError(key)
        return float(value)
    if key == "rank":
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError(key)
        return int(float(value))
    if key == "terms":
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", "|").split("|") if part.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError(key)
    return value


class _Names:
    """Maps ClassLabel ints to names, per column, where the features say so."""

    def __init__(self, features: Any):
        import datasets

        self.labels: dict[str, Any] = {}
        if features is not None:
            for name, feature in features.items():
                if isinstance(feature, datasets.ClassLabel):
                    self.labels[name] = feature

    def __call__(self, column: str, value: Any) -> Any:
        feature = self.labels.get(column)
        if feature is None or value is None or isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return feature.int2str(value) if 0 <= value < feature.num_classes else None
        return value


def _meta_for(cfg: Config, row: dict[str, Any], names: _Names) -> dict[str, Any]:
    meta: dict[str, Any] = {"split": cfg.split}
    if cfg.label_column is not None:
        label = names(cfg.label_column, row.get(cfg.label_column))
        if label is not None and not (isinstance(label, float) and math.isnan(label)):
            meta["label"] = str(label)
    if cfg.culture_mode == "constant":
        meta["culture"] = cfg.culture_value
    elif cfg.culture_mode == "column" and row.get(cfg.culture_value) is not None:
        meta["culture"] = str(row[cfg.culture_value])
    filled = {"split"} | ({"label"} if cfg.label_column else set()) | ({"culture"} if cfg.culture_mode != "none" else set())
    consumed = {cfg.audio_column, cfg.label_column, cfg.id_column}
    if cfg.culture_mode == "column":
        consumed.add(cfg.culture_value)
    for column, value in row.items():
        if column in consumed:
            continue
        value = names(column, value)
        name = f"hf_{column}" if column in _IDENTITY or column in filled or column == "hf_audio_path" else column
        if name in KNOWN_META:
            try:
                value = _typed_meta(name, value)
            except (TypeError, ValueError):
                name = f"hf_{column}"  # e.g. a non-numeric `score`: kept, under another name
        if name == "terms" and isinstance(value, list):
            meta[name] = value
        elif _is_scalar(value):
            meta[name] = value
        # else: nested/array columns have no place in a flat manifest (see the docstring)
    return meta


def items(cfg: Config) -> Iterator[SourceItem | Skipped]:
    dataset, _iterable = load(cfg)
    names = _Names(getattr(dataset, "features", None))
    stem = _id_stem(cfg)
    for index, row in enumerate(dataset):
        where = f"hf:{cfg.hf_id}/{cfg.split}/{index}"
        data, path, why = audio_bytes(row.get(cfg.audio_column))
        if data is None:
            yield Skipped(where, why or "no audio")
            continue
        fmt = _format(path, data)
        if fmt is None:
            yield Skipped(where, f"unknown audio format (path {path!r}, first bytes {data[:8]!r})")
            continue
        if cfg.id_column is not None:
            value = row.get(cfg.id_column)
            if value is None or str(value).strip() == "":
                yield Skipped(where, f"empty {cfg.id_column!r} (id_column)")
                continue
            track_id = str(value)
        else:
            track_id = f"{stem}_{cfg.split}_{index:06d}"
        meta = _meta_for(cfg, row, names)
        if path:
            meta["hf_audio_path"] = str(path)
        yield SourceItem(track_id=track_id, format=fmt, source=where, data=data, meta=meta)


def count(cfg: Config) -> int | None:
    """Rows to expect: the length of a non-streaming dataset, else the limit (or None: unknown)."""
    dataset, iterable = load(cfg)  # also when streaming: a load error surfaces before any progress bar
    if cfg.streaming or iterable:
        return cfg.limit or None
    return len(dataset)


def _options_key(cfg: Config) -> str:
    return "\0".join(str(v) for v in (
        "hf:v1", cfg.hf_id, cfg.revision, cfg.config_name, cfg.split, cfg.limit, cfg.label_column,
        cfg.culture_mode, cfg.culture_value, cfg.id_column, cfg.audio_column,
    ))


def fingerprint(cfg: Config) -> str:
    """Local directory: options + each file's `FileState` signature. Hub: the options (see above)."""
    digest = hashlib.sha256(_options_key(cfg).encode())
    directory = local_dir(cfg)
    if directory is not None:
        digest.update(str(directory.resolve()).encode())
        for folder, subdirs, files in os.walk(directory):
            subdirs.sort()
            for name in sorted(files):
                if name.startswith(".") or name.startswith("cache-") or name.endswith(".lock"):
                    continue
                path = Path(folder) / name
                digest.update(f"{path.relative_to(directory)}\0{file_state(path).signature}\n".encode())
    return digest.hexdigest()
