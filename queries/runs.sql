-- purpose: one row per run with its headline metrics (on test when its split has test rows, else on val), newest first
-- $dataset: dataset name, or '' for every dataset
WITH runs_of_dataset AS (
    SELECT *
    FROM runs
    WHERE $dataset = '' OR dataset = $dataset
),

scored AS (
    SELECT
        *,
        CASE WHEN json_exists(metrics, '$.test') THEN 'test' ELSE 'val' END AS eval_split,
        coalesce(metrics -> '$.test', metrics -> '$.val')                  AS scores
    FROM runs_of_dataset
),

final AS (
    SELECT
        CAST(run_id AS VARCHAR)                                       AS run_id,
        CAST(head AS VARCHAR)                                         AS head,
        CAST(dataset AS VARCHAR)                                      AS dataset,
        CAST(array_to_string(backbones, '+') AS VARCHAR)              AS backbones,
        CAST(layer AS VARCHAR)                                        AS layer,
        CAST(split_name AS VARCHAR)                                   AS split_name,
        CAST(target AS VARCHAR)                                       AS target,
        CAST(eval_split AS VARCHAR)                                   AS eval_split,
        CAST(coalesce(json_array_length(metrics -> '$.seeds.values'), 1) AS INTEGER) AS seeds,
        CAST(scores ->> '$.accuracy' AS DOUBLE)                       AS accuracy,
        CAST(scores ->> '$.balanced_accuracy' AS DOUBLE)              AS balanced_accuracy,
        CAST(scores ->> '$.macro_f1' AS DOUBLE)                       AS macro_f1,
        CAST(scores ->> '$.roc_auc' AS DOUBLE)                        AS roc_auc,
        CAST(data_fingerprint AS VARCHAR)                             AS data_fingerprint,
        CAST(created_at AS TIMESTAMP WITH TIME ZONE)                  AS created_at,
        CAST(path AS VARCHAR)                                         AS path,
        CAST(config AS VARCHAR)                                       AS config,
        CAST(metrics AS VARCHAR)                                      AS metrics
    FROM scored
)

SELECT * FROM final ORDER BY created_at DESC, run_id DESC
