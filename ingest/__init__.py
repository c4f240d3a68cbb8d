"""Ingest: outside audio collections → WebDataset shards + the `tracks` manifest."""
