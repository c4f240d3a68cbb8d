-- purpose: tracks per split × stratum of one named split, with each split's share of the stratum and per-split totals (stratum '(all)')
-- $dataset: dataset name
-- $split_name: the named split (splits.split_name), e.g. default
-- $stratify: tracks column(s) whose combination is the stratum, comma-separated, e.g. label,culture (dataset: no strata)
WITH wanted_columns AS (
    SELECT list_transform(string_split($stratify, ','), lambda c: trim(c)) AS names
),

known_columns AS (
    SELECT list(column_name) AS names FROM (DESCRIBE tracks)
),

-- a misspelt column must fail loudly, not silently drop out of the stratum
checked AS (
    SELECT CASE
        WHEN NOT list_has_all(k.names, w.names)
        THEN error('stratify: no column ' || array_to_string(list_filter(w.names, lambda c: NOT list_contains(k.names, c)), ', ')
                   || ' in tracks')
        ELSE true
    END AS ok
    FROM wanted_columns AS w, known_columns AS k
),

assigned AS (
    SELECT track_id, split
    FROM splits
    WHERE dataset = $dataset AND split_name = $split_name
),

-- COLUMNS picks the stratify columns by name from the bound value: no identifier is built from text
stratum_columns AS (
    SELECT
        track_id,
        coalesce(CAST(COLUMNS(lambda c: list_contains(list_transform(string_split($stratify, ','), lambda x: trim(x)), c)) AS VARCHAR), '(none)')
    FROM tracks
    WHERE dataset = $dataset
),

strata AS (
    SELECT track_id, concat_ws(' · ', *COLUMNS(* EXCLUDE (track_id))) AS stratum
    FROM stratum_columns
),

counted AS (
    SELECT
        a.split,
        coalesce(s.stratum, '(all)') AS stratum,
        count(*) AS tracks
    FROM assigned AS a
    JOIN strata AS s USING (track_id)
    WHERE (SELECT ok FROM checked)
    GROUP BY GROUPING SETS ((a.split, s.stratum), (a.split))
),

final AS (
    SELECT
        CAST(stratum AS VARCHAR)                                                        AS stratum,
        CAST(split AS VARCHAR)                                                          AS split,
        CAST(tracks AS BIGINT)                                                          AS tracks,
        CAST(round(tracks / sum(tracks) OVER (PARTITION BY stratum), 4) AS DOUBLE)      AS share_of_stratum
    FROM counted
)

SELECT * FROM final
ORDER BY stratum = '(all)' DESC, stratum, CASE split WHEN 'train' THEN 0 WHEN 'val' THEN 1 WHEN 'test' THEN 2 ELSE 3 END, split
