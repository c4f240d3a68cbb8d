"""Embed: backbones turn shards into the `embeddings` table, once."""
