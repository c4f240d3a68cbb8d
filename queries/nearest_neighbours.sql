-- purpose: the clips whose vectors are closest (cosine) to one track's, with their labels
-- $dataset: dataset name
-- $backbone: stored backbone name (e.g. musicnn-mtt)
-- $track_id: the query track
-- $k: how many neighbours (text, cast below)
WITH vectors AS (
    -- `embeddings` serves only vectors of each track's current audio, never a stale one
    SELECT track_id, layer, emb
    FROM embeddings
    WHERE dataset = $dataset AND backbone = $backbone
),

-- read with every filter, so the scan skips to the one track (not through `vectors`)
query_vector AS (
    SELECT layer, emb
    FROM embeddings
    WHERE dataset = $dataset AND backbone = $backbone AND track_id = $track_id
),

-- without a current vector of the query track, say why rather than answer nothing
checked AS (
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM query_vector) THEN true
        WHEN EXISTS (SELECT 1 FROM stale_embeddings
                     WHERE dataset = $dataset AND backbone = $backbone AND track_id = $track_id
                       AND why = 'audio changed')
        THEN error('the ' || $backbone || ' vector of track ' || $track_id || ' was made from audio that has '
                   || 'since changed: run just embed dataset=' || $dataset || ' backbone=' || $backbone)
        WHEN NOT EXISTS (SELECT 1 FROM tracks WHERE dataset = $dataset AND track_id = $track_id)
        THEN error('no track ' || $track_id || ' in dataset ' || $dataset)
        ELSE error('track ' || $track_id || ' has no ' || $backbone || ' vector: run just embed dataset='
                   || $dataset || ' backbone=' || $backbone)
    END AS ok
),

scored AS (
    SELECT
        v.track_id,
        v.layer,
        list_cosine_similarity(v.emb, q.emb) AS cosine
    FROM vectors AS v
    JOIN query_vector AS q USING (layer)
    WHERE v.track_id <> $track_id AND (SELECT ok FROM checked)
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
