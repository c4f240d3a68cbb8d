-- NDCG@20 of every method (DCAS and its baselines) in each dcas run, with bootstrap 95% CIs over
-- users and the paired test against DCAS: just sql file=queries/dcas_methods.sql dataset=demo
SELECT r.run_id,
       m.key AS method,
       round(CAST(json_extract(m.value, '$."ndcg@20".mean') AS DOUBLE), 4) AS ndcg_20,
       round(CAST(json_extract(m.value, '$."ndcg@20".ci[0]') AS DOUBLE), 4) AS ci_low,
       round(CAST(json_extract(m.value, '$."ndcg@20".ci[1]') AS DOUBLE), 4) AS ci_high,
       CAST(json_extract(m.value, '$."ndcg@20".p_vs_dcas') AS DOUBLE) AS p_vs_dcas
FROM runs r, json_each(json_extract(r.metrics, '$.test.methods')) m
WHERE r.head = 'dcas' AND r.dataset = $dataset
ORDER BY r.created_at DESC, r.run_id, ndcg_20 DESC;
