-- purpose: values of one group column (e.g. speaker_id) whose tracks fall in more than one split of a named split
-- $dataset: dataset name
-- $split_name: the named split (splits.split_name), e.g. default
-- $group_column: the tracks column whose values must stay within one split, e.g. speaker_id
WITH assigned AS (
    SELECT track_id, split
    FROM splits
    WHERE dataset = $dataset AND split_name = $split_name
),

-- COLUMNS picks the column by name from the bound value (no identifier built from text);
-- a name matching no column is a binder error ("resulted in an empty set of columns")
grouped AS (
    SELECT track_id, CAST(COLUMNS(lambda c: c = $group_column) AS VARCHAR) AS group_value
    FROM tracks
    WHERE dataset = $dataset
),

per_group AS (
    SELECT
        g.group_value,
        count(*)                                        AS tracks,
        count(*) FILTER (WHERE a.split = 'train')       AS train,
        count(*) FILTER (WHERE a.split = 'val')         AS val,
        count(*) FILTER (WHERE a.split = 'test')        AS test,
        count(DISTINCT a.split)                         AS n_splits,
        list(DISTINCT a.split ORDER BY a.split)         AS splits,
        list(a.track_id ORDER BY a.split, a.track_id)   AS track_ids
    FROM assigned AS a
    JOIN grouped AS g USING (track_id)
    WHERE g.group_value IS NOT NULL  -- a NULL group is no group: each such track stands alone
    GROUP BY g.group_value
),

final AS (
    SELECT
        CAST(group_value AS VARCHAR)   AS group_value,
        CAST(tracks AS BIGINT)         AS tracks,
        CAST(train AS BIGINT)          AS train,
        CAST(val AS BIGINT)            AS val,
        CAST(test AS BIGINT)           AS test,
        CAST(splits AS VARCHAR[])      AS splits,
        CAST(track_ids AS VARCHAR[])   AS track_ids
    FROM per_group
    WHERE n_splits > 1
)

SELECT * FROM final ORDER BY tracks DESC, group_value
