# audiolake: every recipe forwards its key=value arguments to Python, which validates them.
# positional-arguments + "$@" keeps a quoted SQL string one argument ({{args}} would split it).
set positional-arguments
set shell := ["bash", "-cu"]

python := env_var_or_default("PYTHON", "python")

# list the recipes
default:
    @just --list

# audio source → WebDataset shards + tracks manifest: just ingest dataset=demo
ingest *args:
    @{{python}} -m ingest "$@"

# backbone → embeddings, once: just embed dataset=gtzan backbone=mert-v1-95m
embed *args:
    @{{python}} -m embed "$@"

# fetch the musicnn weights (a PyPI wheel) into the cache, e.g. before going offline
weights:
    @{{python}} -c "from embed.musicnn import ensure_wheel; print(ensure_wheel())"

# the main job on the offline demo data: ingest, embed (musicnn-mtt, logmel), SQL answers, probes
demo *args:
    @{{python}} -m ingest dataset=demo "$@"
    @{{python}} -m embed dataset=demo backbone=musicnn-mtt
    @{{python}} -m embed dataset=demo backbone=logmel
    @echo "clips per culture × label:"
    @{{python}} -m lake.sql file=queries/culture_by_label.sql dataset=demo
    @echo "nearest neighbours of demo_000000 by musicnn-mtt:"
    @{{python}} -m lake.sql file=queries/nearest_neighbours.sql dataset=demo backbone=musicnn-mtt track_id=demo_000000 k=5
    @# takes of one song are near-duplicates: group_id keeps them in one split
    @{{python}} -m lake.splits dataset=demo name=default stratify=label,culture group=group_id
    @{{python}} -m heads head=probe dataset=demo backbone=musicnn-mtt target=label
    @{{python}} -m heads head=probe dataset=demo backbone=logmel target=label
    @{{python}} -m heads head=probe dataset=demo backbone=musicnn-mtt target=culture
    @{{python}} -m heads head=probe dataset=demo backbone=logmel target=culture
    @{{python}} -m heads.compare dataset=demo head=probe target=label
    @{{python}} -m heads.compare dataset=demo head=probe target=culture

# data profile, checks and plots: just validate dataset=demo backbone=musicnn-mtt
validate *args:
    @{{python}} -m lake.validate "$@"

# a named, seeded, stratified, group-aware split: just split dataset=demo stratify=label group=speaker_id
split *args:
    @{{python}} -m lake.splits "$@"

# the leakage report of an existing split: just leakage dataset=demo name=default backbone=musicnn-mtt
leakage *args:
    @{{python}} -m lake.leakage "$@"

# weak (synthetic) or imported user interactions: just interactions dataset=demo
interactions *args:
    @{{python}} -m lake.interactions "$@"

# train and evaluate a head on embeddings: just train head=probe dataset=demo backbone=musicnn-mtt target=label
train *args:
    @{{python}} -m heads "$@"

# experiment results: just runs [where="head = 'probe'"]
runs *args:
    @{{python}} -m heads.runs "$@"

# backbones × metrics from the runs table: just compare dataset=demo head=probe target=label
compare *args:
    @{{python}} -m heads.compare "$@"

# SQL over the lake: just sql "SELECT ..." | just sql file=queries/NAME.sql key=value
sql *args:
    @{{python}} -m lake.sql "$@"

# each table with rows, partitions, files and bytes
tables:
    @{{python}} -m lake.tables

# benchmarks: just bench ingest | embed | read_path | near_duplicates | heads (ratios against a baseline)
bench name *args:
    @{{python}} bench/{{name}}.py "${@:2}"

# the test suite
test *args:
    {{python}} -m pytest -q "$@"
