-- purpose: seed 002's table: the latest run of a head on a target per backbone(s) × layer, with headline and per-class accuracy (recall)
-- $dataset: dataset name
-- $head: head name, e.g. probe
-- $target: the tracks column the head predicted
-- $split_name: a split name, or '' for runs on any split
WITH runs_of_target AS (
    SELECT *
    FROM runs
    WHERE dataset = $dataset
      AND head = $head
      AND target = $target
      AND ($split_name = '' OR split_name = $split_name)
),

latest AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY backbones, layer, split_name ORDER BY created_at DESC, run_id DESC) AS recency
    FROM runs_of_target
),

scored AS (
    SELECT
        *,
        CASE WHEN json_exists(metrics, '$.test') THEN 'test' ELSE 'val' END AS eval_split,
        coalesce(metrics -> '$.test', metrics -> '$.val')                  AS scores,
        CASE WHEN json_exists(metrics, '$.test')
             THEN metrics -> '$.seeds.std.test' ELSE metrics -> '$.seeds.std.val' END AS spread
    FROM latest
    WHERE recency = 1
),

final AS (
    SELECT
        CAST(array_to_string(backbones, ' ⊕ ') AS VARCHAR)                     AS backbone,
        CAST(layer AS VARCHAR)                                                 AS layer,
        CAST(len(json_keys(metrics, '$.layers')) AS INTEGER)                   AS layers_tried,
        CAST(split_name AS VARCHAR)                                            AS split_name,
        CAST(eval_split AS VARCHAR)                                            AS eval_split,
        CAST(coalesce(json_array_length(metrics -> '$.seeds.values'), 1) AS INTEGER) AS seeds,
        CAST(scores ->> '$.n' AS INTEGER)                                      AS n,
        CAST(scores ->> '$.accuracy' AS DOUBLE)                                AS accuracy,
        CAST(scores ->> '$.balanced_accuracy' AS DOUBLE)                       AS balanced_accuracy,
        CAST(scores ->> '$.macro_f1' AS DOUBLE)                                AS macro_f1,
        CAST(scores ->> '$.roc_auc' AS DOUBLE)                                 AS roc_auc,
        CAST(spread ->> '$.accuracy' AS DOUBLE)                                AS accuracy_std,
        CAST(spread ->> '$.balanced_accuracy' AS DOUBLE)                       AS balanced_accuracy_std,
        CAST(spread ->> '$.macro_f1' AS DOUBLE)                                AS macro_f1_std,
        CAST(spread ->> '$.roc_auc' AS DOUBLE)                                 AS roc_auc_std,
        CAST(scores -> '$.per_class_accuracy' AS MAP(VARCHAR, DOUBLE))         AS per_class_accuracy,
        CAST(spread -> '$.per_class_accuracy' AS MAP(VARCHAR, DOUBLE))         AS per_class_accuracy_std,
        CAST(run_id AS VARCHAR)                                                AS run_id,
        CAST(created_at AS TIMESTAMP WITH TIME ZONE)                           AS created_at
    FROM scored
)

SELECT * FROM final ORDER BY backbone, layer, split_name
