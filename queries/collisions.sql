-- purpose: semantic-ID collisions of one head=semantic_ids run, as seed 004's debug_collisions prints them: IDs shared by several songs, the songs in them, the largest cluster
-- $run_id: the run whose codes to read (just runs lists them)
WITH per_id AS (
    SELECT codes, count(*) AS songs
    FROM semantic_ids
    WHERE run_id = $run_id
    GROUP BY codes
)
SELECT
    sum(songs)                                   AS songs,
    count(*)                                     AS ids,
    count(*) FILTER (WHERE songs > 1)            AS shared_ids,
    coalesce(sum(songs) FILTER (WHERE songs > 1), 0) AS songs_in_shared,
    max(songs)                                   AS largest
FROM per_id
