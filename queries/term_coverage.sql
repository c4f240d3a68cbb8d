-- purpose: chunks per glossary main term (seed 003's term_chunks datasets): terms that no chunk
--          speaks come first (chunks = 0), so a glossary far larger than its data shows at a
--          glance. Chunk terms are main terms already (aliases were folded in at ingest).
-- $dataset: the dataset whose glossary and tracks are counted
WITH spoken AS (
    SELECT track_id, unnest(terms) AS term FROM tracks WHERE dataset = $dataset
)
SELECT g.main_term, any_value(g.description) AS description, count(DISTINCT s.track_id) AS chunks
FROM (SELECT DISTINCT main_term, description FROM glossary WHERE dataset = $dataset AND term = main_term) g
LEFT JOIN spoken s ON s.term = g.main_term
GROUP BY g.main_term
ORDER BY chunks, g.main_term
