"""Heads: small models trained on SQL-selected embeddings (one module per head)."""
