-- purpose: per backbone with vectors in one dataset: clips with and without a vector (in any
--          layer) and the share covered; vectors whose stored sha256 differs from the clip's
--          (computed from other audio: stale) and vectors of track ids not in tracks (orphans).
--          A backbone with no vector at all in the dataset has no row: the caller asks for it.
-- $dataset: dataset name
WITH clips AS (
    -- one row per track id even when tracks holds it twice (validate reports that apart)
    SELECT track_id, max(sha256) AS sha256
    FROM tracks
    WHERE dataset = $dataset
    GROUP BY track_id
),

vectors AS (
    SELECT DISTINCT backbone, track_id, sha256
    FROM embeddings
    WHERE dataset = $dataset
),

backbones_of_dataset AS (
    SELECT DISTINCT backbone FROM vectors
),

per_clip AS (
    SELECT
        b.backbone,
        c.track_id,
        bool_or(v.track_id IS NOT NULL)                          AS has_vector,
        -- a vector without a recorded sha256 (written by another tool) is not called stale
        bool_or(v.sha256 IS NULL OR v.sha256 = c.sha256)         AS has_current
    FROM backbones_of_dataset AS b
    CROSS JOIN clips AS c
    LEFT JOIN vectors AS v ON v.backbone = b.backbone AND v.track_id = c.track_id
    GROUP BY ALL
),

orphans AS (
    SELECT v.backbone, count(DISTINCT v.track_id) AS orphan_vectors
    FROM vectors AS v
    ANTI JOIN clips AS c USING (track_id)
    GROUP BY v.backbone
),

final AS (
    SELECT
        CAST(p.backbone AS VARCHAR)                                               AS backbone,
        CAST(count(*) AS BIGINT)                                                  AS clips,
        CAST(count(*) FILTER (WHERE p.has_vector) AS BIGINT)                      AS with_vectors,
        CAST(count(*) FILTER (WHERE NOT p.has_vector) AS BIGINT)                  AS without_vectors,
        CAST(round(count(*) FILTER (WHERE p.has_vector) / count(*), 4) AS DOUBLE) AS coverage,
        CAST(count(*) FILTER (WHERE p.has_vector AND NOT p.has_current) AS BIGINT) AS stale_vectors,
        CAST(coalesce(any_value(o.orphan_vectors), 0) AS BIGINT)                  AS orphan_vectors
    FROM per_clip AS p
    LEFT JOIN orphans AS o USING (backbone)
    GROUP BY p.backbone
)

SELECT * FROM final ORDER BY backbone
