-- purpose: semantic-ID collisions of one head=semantic_ids run, as seed 004's debug_collisions prints them: IDs shared by several songs, the songs in them, the largest cluster
-- $run_id: the run whose codes to read (just runs lists them), or latest: the newest head=semantic_ids run
WITH chosen AS (
    SELECT CASE WHEN $run_id = 'latest'
                THEN (SELECT run_id FROM runs WHERE head = 'semantic_ids' ORDER BY created_at DESC LIMIT 1)
                ELSE $run_id END AS run_id
),
per_id AS (
    SELECT codes, count(*) AS songs
    FROM semantic_ids
    WHERE run_id = (SELECT run_id FROM chosen)
    GROUP BY codes
)
SELECT
    (SELECT run_id FROM chosen)                  AS run_id,
    CAST(sum(songs) AS BIGINT)                   AS songs,
    count(*)                                     AS ids,
    count(*) FILTER (WHERE songs > 1)            AS shared_ids,
    CAST(coalesce(sum(songs) FILTER (WHERE songs > 1), 0) AS BIGINT) AS songs_in_shared,
    max(songs)                                   AS largest
FROM per_id
