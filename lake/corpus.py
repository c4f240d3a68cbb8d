"""What a collaborative backbone trains on instead of audio: a dataset's playlists as sentences.

item2vec (embed/item2vec.py) learns one vector per song from the whole playlists table, so its
vectors belong to that table as an audio backbone's belong to each clip's audio hash. The
table's digest is written into the vectors' part (`lake.embedding_parts.CORPUS_KEY`);
`lake.embeddings.load` compares it with the table as it is now and refuses vectors trained on
playlists that have since changed, naming the `just embed` that retrains them.
"""
from __future__ import annotations

import duckdb
import pyarrow as pa

from lake import arrow_bytes, catalog

PLAYLISTS = "playlists"  # the one corpus so far; the digest is spelt "<corpus>:<sha256>"


def playlist_sentences(dataset: str, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """(playlist_id, tracks): each playlist's track ids in playlist order, by playlist id."""
    con = con or catalog.connect()
    return con.sql(
        "SELECT playlist_id, list(track_id ORDER BY position, track_id) AS tracks FROM playlists "
        "WHERE dataset = $d GROUP BY playlist_id ORDER BY playlist_id", params={"d": dataset}).to_arrow_table()


def digest(sentences: pa.Table) -> str:
    """`playlists:<sha256>` of the sentences' Arrow IPC bytes: same playlists, same digest."""
    return f"{PLAYLISTS}:{arrow_bytes.sha256(sentences)}"


def current_digest(dataset: str) -> str:
    return digest(playlist_sentences(dataset))
