-- purpose: identical audio (same sha256) whose copies fall in more than one split of a named split
-- $dataset: dataset name
-- $split_name: the named split (splits.split_name), e.g. default
WITH assigned AS (
    SELECT track_id, split
    FROM splits
    WHERE dataset = $dataset AND split_name = $split_name
),

hashes AS (
    SELECT track_id, sha256
    FROM tracks
    WHERE dataset = $dataset AND sha256 IS NOT NULL
),

per_audio AS (
    SELECT
        h.sha256,
        count(*)                                        AS tracks,
        count(DISTINCT a.split)                         AS n_splits,
        list(DISTINCT a.split ORDER BY a.split)         AS splits,
        list(a.track_id ORDER BY a.split, a.track_id)   AS track_ids
    FROM assigned AS a
    JOIN hashes AS h USING (track_id)
    GROUP BY h.sha256
),

final AS (
    SELECT
        CAST(sha256 AS VARCHAR)        AS sha256,
        CAST(tracks AS BIGINT)         AS tracks,
        CAST(splits AS VARCHAR[])      AS splits,
        CAST(track_ids AS VARCHAR[])   AS track_ids
    FROM per_audio
    WHERE n_splits > 1
)

SELECT * FROM final ORDER BY tracks DESC, sha256
