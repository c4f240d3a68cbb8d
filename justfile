# audiolake: every recipe forwards its key=value arguments to Python, which validates them.
# positional-arguments + "$@" keeps a quoted SQL string one argument ({{args}} would split it).
set positional-arguments
set shell := ["bash", "-cu"]

python := env_var_or_default("PYTHON", "python")
spoken_terms := env_var_or_default("AUDIOLAKE_ROOT", "data") / "sources" / "spoken_terms"
first_test_song := "group_id = (SELECT min(t.group_id) FROM tracks t JOIN splits s USING (dataset, track_id) WHERE s.split_name = 'singing' AND s.split = 'test')"

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

# the main job on the offline demo data: ingest, embed (musicnn-mtt, logmel), SQL answers, probes, the singing scorer
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
    @# seed 001 on the singing clips: a song's takes (one group_id) stay in one split, singers span all three
    @{{python}} -m lake.splits dataset=demo name=singing where="speaker_id IS NOT NULL" stratify= group=group_id ratios=0.6,0.2,0.2 > /dev/null
    @echo "the singing scorer, without and with a speaker adversary (in half the groups the score follows the singer):"
    @{{python}} -m heads head=scorer dataset=demo backbone=musicnn-mtt split=singing > /dev/null
    @{{python}} -m heads head=scorer dataset=demo backbone=musicnn-mtt split=singing adversary=speaker_id > /dev/null
    @{{python}} -m heads.compare dataset=demo head=scorer
    @echo "just score on two files: two takes of the first test song, exported from the shards (their truth below):"
    @{{python}} -m heads.score run=latest head=scorer dataset=demo $({{python}} -m heads.clips dataset=demo limit=2 where="{{first_test_song}}")
    @{{python}} -m lake.sql "SELECT track_id, score, rank, speaker_id FROM tracks WHERE dataset = 'demo' AND {{first_test_song}} ORDER BY track_id LIMIT 2"
    @echo "frozen vs LoRA on a tiny random HuBERT (the machinery, not a result; a quarter of the demo):"
    @{{python}} -m heads.lora_demo dataset=demo
    @# seed 000: DCAS on synthetic interactions (users prefer their own culture), leave-last-out by ts
    @echo "DCAS (OT in za) vs popularity and content cosine on held-out interactions, and the culture probe:"
    @{{python}} -m lake.interactions dataset=demo > /dev/null
    @{{python}} -m lake.interactions dataset=demo split=last > /dev/null
    @{{python}} -m heads head=dcas dataset=demo backbone=musicnn-mtt interaction_split=last > /dev/null
    @{{python}} -m heads.dcas_summary dataset=demo
    @echo "seed 004: playlists made from the demo titles, semantic IDs of musicnn-mtt vectors, a T5 from title to IDs:"
    @{{python}} -m heads.playlist_demo dataset=demo
    @{{python}} -m heads head=semantic_ids dataset=demo backbone=musicnn-mtt codes=16,8 > /dev/null
    @{{python}} -m lake.sql file=queries/collisions.sql run_id=latest
    @{{python}} -m heads head=playlist dataset=demo epochs=20
    @{{python}} -m heads.playlist_generate run=latest dataset=demo "calm ambient for sleep" n=8
    @# seed 003: glossary terms spoken by espeak-ng in 11 voices; the test voices are never heard in training
    @echo "term retrieval on espeak-ng speech (held-out voices): test Recall@5 and the rejection rate of chunks without a term:"
    @{{python}} -m ingest.spoken_terms out="{{spoken_terms}}" > /dev/null
    @{{python}} -m ingest dataset=spoken_terms source=term_chunks path="{{spoken_terms}}" glossary="{{spoken_terms}}/glossary_filtered.json" aliases="{{spoken_terms}}/alt2main.json" > /dev/null
    @{{python}} -m embed dataset=spoken_terms backbone=logmel > /dev/null
    @{{python}} -m lake.splits dataset=spoken_terms name=voices from_source=true > /dev/null
    @{{python}} -m heads head=retrieval dataset=spoken_terms backbone=logmel split=voices > /dev/null
    @{{python}} -m lake.sql "SELECT run_id, round(CAST(json_extract(metrics, '$.test.recall_at_5') AS DOUBLE), 3) AS recall_at_5, round(CAST(json_extract(metrics, '$.test.rejection_rate') AS DOUBLE), 3) AS rejection_rate, round(CAST(json_extract(metrics, '$.test.false_accept_rate') AS DOUBLE), 3) AS false_accept_rate FROM runs WHERE head = 'retrieval' AND dataset = 'spoken_terms' ORDER BY created_at DESC LIMIT 1"
    @echo "just search-terms on two test-voice chunks: 'transformer' and 'see you later' (no term):"
    @{{python}} -m heads.retrieval_search run=latest dataset=spoken_terms "{{spoken_terms}}/chunks/en-us_f5/000.wav" "{{spoken_terms}}/chunks/en-us_f5/045.wav" k=3

# a dcas run's list for one user and target culture: just recommend run=latest dataset=demo user=west-u003 target_culture=maqam k=20
recommend *args:
    @{{python}} -m heads.recommend "$@"

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

# backbones × metrics from the runs table: just compare dataset=demo head=probe target=label | head=scorer
compare *args:
    @{{python}} -m heads.compare "$@"

# a scorer run's scores for audio files: just score run=RUN_ID take1.wav take2.m4a | run=latest head=scorer dataset=demo FILE
score *args:
    @{{python}} -m heads.score "$@"

# a playlist from a title by a head=playlist run: just playlist run=latest "quiet piano for study" n=20
playlist *args:
    @{{python}} -m heads.playlist_generate "$@"

# glossary terms spoken in audio files, or "no term": just search-terms run=RUN_ID chunk.wav k=5 | run=latest dataset=spoken_terms FILE
search-terms *args:
    @{{python}} -m heads.retrieval_search "$@"

# SQL over the lake: just sql "SELECT ..." | just sql file=queries/NAME.sql key=value
sql *args:
    @{{python}} -m lake.sql "$@"

# each table with rows, partitions, files and bytes
tables:
    @{{python}} -m lake.tables

# benchmarks: just bench ingest | embed | read_path | near_duplicates | heads | dcas | retrieval | semantic_ids | lora | crash_race (ratios against a baseline)
bench name *args:
    @{{python}} bench/{{name}}.py "${@:2}"

# the test suite
test *args:
    {{python}} -m pytest -q "$@"
