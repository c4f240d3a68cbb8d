"""The lake: where every table lives, how it is written, and the DuckDB catalog over it."""
