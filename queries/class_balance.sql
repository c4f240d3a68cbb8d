-- purpose: clips per class of each class column of one dataset (label, culture, affect_label,
--          speaker_id, split), with each class's share of the dataset's clips. Missing values
--          (NULL or '') count as one row with value NULL; a column with no value at all in the
--          dataset is left out. Column names are fixed here, never taken from a parameter: the
--          columns are turned into rows first, so $column is compared as a value.
-- $dataset: dataset name
-- $column: label | culture | affect_label | speaker_id | split, or all for every one of them
WITH tracks_of_dataset AS (
    SELECT label, culture, affect_label, speaker_id, split
    FROM tracks
    WHERE dataset = $dataset
),

long AS (
    SELECT 'label' AS column_name, nullif(label, '') AS value FROM tracks_of_dataset
    UNION ALL
    SELECT 'culture', nullif(culture, '') FROM tracks_of_dataset
    UNION ALL
    SELECT 'affect_label', nullif(affect_label, '') FROM tracks_of_dataset
    UNION ALL
    SELECT 'speaker_id', nullif(speaker_id, '') FROM tracks_of_dataset
    UNION ALL
    SELECT 'split', nullif(split, '') FROM tracks_of_dataset
),

selected AS (
    SELECT column_name, value
    FROM long
    WHERE $column IN ('all', column_name)
),

counted AS (
    SELECT column_name, value, count(*) AS clips
    FROM selected
    GROUP BY ALL
),

present AS (
    SELECT column_name
    FROM counted
    GROUP BY column_name
    HAVING bool_or(value IS NOT NULL)
),

final AS (
    SELECT
        CAST(c.column_name AS VARCHAR)                                                   AS column_name,
        CAST(c.value AS VARCHAR)                                                         AS value,
        CAST(c.clips AS BIGINT)                                                          AS clips,
        CAST(round(c.clips / sum(c.clips) OVER (PARTITION BY c.column_name), 4) AS DOUBLE) AS share
    FROM counted AS c
    JOIN present AS p USING (column_name)
)

SELECT * FROM final ORDER BY column_name, value IS NULL, clips DESC, value
