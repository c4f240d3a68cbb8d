# audiolake: every recipe forwards its key=value arguments to Python, which validates them.
# positional-arguments + "$@" keeps a quoted SQL string one argument ({{args}} would split it).
set positional-arguments

python := env_var_or_default("PYTHON", "python")

# list the recipes
default:
    @just --list

# audio source → WebDataset shards + tracks manifest: just ingest dataset=demo
ingest *args:
    @{{python}} -m ingest "$@"

# SQL over the lake: just sql "SELECT ..." | just sql file=queries/NAME.sql key=value
sql *args:
    @{{python}} -m lake.sql "$@"

# each table with rows, partitions, files and bytes
tables:
    @{{python}} -m lake.tables

# the test suite
test *args:
    {{python}} -m pytest -q "$@"
