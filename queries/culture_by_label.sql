-- purpose: clip counts and hours of audio for each culture × label of one dataset
-- $dataset: dataset name
WITH tracks_of_dataset AS (
    SELECT culture, label, duration_s
    FROM tracks
    WHERE dataset = $dataset
),

final AS (
    SELECT
        coalesce(culture, '(none)')                   AS culture,
        coalesce(label, '(none)')                     AS label,
        CAST(count(*) AS BIGINT)                      AS clips,
        CAST(round(sum(duration_s) / 3600, 3) AS DOUBLE) AS hours
    FROM tracks_of_dataset
    GROUP BY ALL
)

SELECT * FROM final ORDER BY culture, label
