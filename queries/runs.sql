-- purpose: one row per run with the headline metrics its head declared (on test when its split has test rows, else on val), newest first
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
        coalesce(metrics -> '$.test', metrics -> '$.val')                  AS scores,
        -- the head's declaration (heads/protocol.py Metric.spec); per-key metrics are compare's
        list_filter(CAST(metrics -> '$.headline' AS JSON[]),
                    lambda spec: NOT coalesce(CAST(spec ->> '$.per_key' AS BOOLEAN), false)) AS declared
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
        CAST(coalesce(metrics ->> '$.variant', '') AS VARCHAR)        AS variant,
        CAST(eval_split AS VARCHAR)                                   AS eval_split,
        CAST(coalesce(json_array_length(metrics -> '$.seeds.values'), 1) AS INTEGER) AS seeds,
        -- metric name → value, in the order the head declared them
        map_from_entries(list_transform(declared, lambda spec: struct_pack(
            k := spec ->> '$.name',
            v := TRY_CAST(scores ->> ('$.' || (spec ->> '$.name')) AS DOUBLE)))) AS headline,
        CAST(to_json(declared) AS VARCHAR)                            AS declared,
        CAST(data_fingerprint AS VARCHAR)                             AS data_fingerprint,
        CAST(created_at AS TIMESTAMP WITH TIME ZONE)                  AS created_at,
        CAST(path AS VARCHAR)                                         AS path,
        CAST(config AS VARCHAR)                                       AS config,
        CAST(metrics AS VARCHAR)                                      AS metrics
    FROM scored
)

SELECT * FROM final ORDER BY created_at DESC, run_id DESC
