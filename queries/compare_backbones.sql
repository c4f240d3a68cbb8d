-- purpose: the latest run of a head per backbone(s) × layer × variant, with the headline metrics the head declared (per-key ones spread as name[key])
-- $dataset: dataset name
-- $head: head name, e.g. probe or scorer; LoRA runs (head lora, task probe|scorer) show beside the frozen
--        head they adapt, and head=lora shows them with the frozen runs on the same backbone and layer
-- $target: what the head predicted (a tracks column), or '' for any
-- $split_name: a split name, or '' for runs on any split
WITH runs_of_head AS (
    SELECT *, coalesce(metrics ->> '$.variant', '') AS variant
    FROM runs r
    WHERE dataset = $dataset
      AND (head = $head
           OR (head = 'lora' AND config ->> '$.task' = $head)
           OR ($head = 'lora' AND EXISTS (
                   SELECT 1 FROM runs l
                   WHERE l.dataset = $dataset AND l.head = 'lora' AND l.config ->> '$.task' = r.head
                     AND l.backbones = r.backbones AND l.layer = r.layer
                     AND ($target = '' OR l.target = $target) AND ($split_name = '' OR l.split_name = $split_name))))
      AND ($target = '' OR target = $target)
      AND ($split_name = '' OR split_name = $split_name)
),

latest AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY backbones, layer, split_name, target, variant
                           ORDER BY created_at DESC, run_id DESC) AS recency
    FROM runs_of_head
),

scored AS (
    SELECT
        *,
        CASE WHEN json_exists(metrics, '$.test') THEN 'test' ELSE 'val' END AS eval_split,
        coalesce(metrics -> '$.test', metrics -> '$.val')                  AS scores,
        CASE WHEN json_exists(metrics, '$.test')
             THEN metrics -> '$.seeds.std.test' ELSE metrics -> '$.seeds.std.val' END AS spread,
        CAST(metrics -> '$.headline' AS JSON[])                            AS declared
    FROM latest
    WHERE recency = 1
),

-- one entry per declared metric; a per-key metric (the probe's per-class accuracy) one per key
flattened AS (
    SELECT
        *,
        flatten(list_transform(declared, lambda spec:
            CASE WHEN coalesce(CAST(spec ->> '$.per_key' AS BOOLEAN), false)
                 THEN list_transform(
                          map_entries(TRY_CAST(scores -> ('$.' || (spec ->> '$.name')) AS MAP(VARCHAR, DOUBLE))),
                          lambda e: struct_pack(k := (spec ->> '$.name') || '[' || e.key || ']', v := e.value))
                 ELSE [struct_pack(k := spec ->> '$.name',
                                   v := TRY_CAST(scores ->> ('$.' || (spec ->> '$.name')) AS DOUBLE))]
            END)) AS means,
        flatten(list_transform(declared, lambda spec:
            CASE WHEN coalesce(CAST(spec ->> '$.per_key' AS BOOLEAN), false)
                 THEN list_transform(
                          map_entries(TRY_CAST(spread -> ('$.' || (spec ->> '$.name')) AS MAP(VARCHAR, DOUBLE))),
                          lambda e: struct_pack(k := (spec ->> '$.name') || '[' || e.key || ']', v := e.value))
                 ELSE [struct_pack(k := spec ->> '$.name',
                                   v := TRY_CAST(spread ->> ('$.' || (spec ->> '$.name')) AS DOUBLE))]
            END)) AS spreads
    FROM scored
),

final AS (
    SELECT
        CAST(array_to_string(backbones, ' ⊕ ') AS VARCHAR)                     AS backbone,
        CAST(layer AS VARCHAR)                                                 AS layer,
        CAST(variant AS VARCHAR)                                               AS variant,
        CAST(target AS VARCHAR)                                                AS target,
        CAST(len(json_keys(metrics, '$.layers')) AS INTEGER)                   AS layers_tried,
        CAST(split_name AS VARCHAR)                                            AS split_name,
        CAST(eval_split AS VARCHAR)                                            AS eval_split,
        CAST(coalesce(json_array_length(metrics -> '$.seeds.values'), 1) AS INTEGER) AS seeds,
        CAST(scores ->> '$.n' AS INTEGER)                                      AS n,
        map_from_entries(means)                                                AS headline,
        map_from_entries(list_filter(spreads, lambda e: e.v IS NOT NULL))      AS headline_std,
        CAST(to_json(declared) AS VARCHAR)                                     AS declared,
        CAST(run_id AS VARCHAR)                                                AS run_id,
        CAST(created_at AS TIMESTAMP WITH TIME ZONE)                           AS created_at
    FROM flattened
)

SELECT * FROM final ORDER BY backbone, layer, variant, split_name, target
