-- purpose: per backbone with vectors stored for one dataset: clips with a vector of their current
--          audio (with_vectors, the ones readers get), clips whose only vector was made from audio
--          that has since changed (stale_vectors), clips with none (without_vectors), the share
--          covered, and stored track ids no longer in tracks (orphan_vectors). Stale and orphan
--          vectors stay in the parts until the next `just embed` prunes them.
--          A backbone with no vector at all in the dataset has no row: the caller asks for it.
-- $dataset: dataset name
WITH clips AS (
    -- one row per track id even when tracks holds it twice (validate reports that apart)
    SELECT DISTINCT track_id
    FROM tracks
    WHERE dataset = $dataset
),

stored AS (
    SELECT DISTINCT backbone, track_id
    FROM stored_embeddings
    WHERE dataset = $dataset
),

-- the `embeddings` view holds the rule for "current": the same (track_id, sha256) as tracks
served AS (
    SELECT DISTINCT backbone, track_id
    FROM embeddings
    WHERE dataset = $dataset
),

backbones_of_dataset AS (
    SELECT DISTINCT backbone FROM stored
),

per_clip AS (
    SELECT
        b.backbone,
        c.track_id,
        s.track_id IS NOT NULL AS has_stored,
        v.track_id IS NOT NULL AS has_current
    FROM backbones_of_dataset AS b
    CROSS JOIN clips AS c
    LEFT JOIN stored AS s ON s.backbone = b.backbone AND s.track_id = c.track_id
    LEFT JOIN served AS v ON v.backbone = b.backbone AND v.track_id = c.track_id
),

orphans AS (
    SELECT s.backbone, count(*) AS orphan_vectors
    FROM stored AS s
    ANTI JOIN clips AS c USING (track_id)
    GROUP BY s.backbone
),

final AS (
    SELECT
        CAST(p.backbone AS VARCHAR)                                                     AS backbone,
        CAST(count(*) AS BIGINT)                                                        AS clips,
        CAST(count(*) FILTER (WHERE p.has_current) AS BIGINT)                           AS with_vectors,
        CAST(count(*) FILTER (WHERE p.has_stored AND NOT p.has_current) AS BIGINT)      AS stale_vectors,
        CAST(count(*) FILTER (WHERE NOT p.has_stored) AS BIGINT)                        AS without_vectors,
        CAST(round(count(*) FILTER (WHERE p.has_current) / count(*), 4) AS DOUBLE)      AS coverage,
        CAST(coalesce(any_value(o.orphan_vectors), 0) AS BIGINT)                        AS orphan_vectors
    FROM per_clip AS p
    LEFT JOIN orphans AS o USING (backbone)
    GROUP BY p.backbone
)

SELECT * FROM final ORDER BY backbone
