-- purpose: the clips whose vectors are closest (cosine) to one track's, with their labels
-- $dataset: dataset name
-- $backbone: stored backbone name (e.g. musicnn-mtt)
-- $track_id: the query track
-- $k: how many neighbours (text, cast below)
WITH vectors AS (
    SELECT track_id, layer, emb
    FROM embeddings
    WHERE dataset = $dataset AND backbone = $backbone
),

query_vector AS (
    SELECT layer, emb FROM vectors WHERE track_id = $track_id
),

scored AS (
    SELECT
        v.track_id,
        v.layer,
        list_cosine_similarity(v.emb, q.emb) AS cosine
    FROM vectors AS v
    JOIN query_vector AS q USING (layer)
    WHERE v.track_id <> $track_id
),

final AS (
    SELECT
        s.track_id,
        s.layer,
        CAST(round(s.cosine, 4) AS DOUBLE) AS cosine,
        t.culture,
        t.label,
        t.title
    FROM scored AS s
    JOIN tracks AS t ON t.dataset = $dataset AND t.track_id = s.track_id
)

SELECT * FROM final ORDER BY layer, cosine DESC LIMIT CAST($k AS INTEGER)
