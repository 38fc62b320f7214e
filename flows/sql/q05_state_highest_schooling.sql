-- question: The state with the highest average schooling (anosesco).
-- unit: state
-- rows: everyone whose schooling entered the comparison (anosesco present).
-- Ties break by name so the answer is stable.
WITH by_state AS (
    SELECT uf, avg(anosesco) AS avg_anosesco
    FROM publico_alvo
    WHERE anosesco IS NOT NULL
    GROUP BY uf
)
SELECT
    (SELECT uf FROM by_state ORDER BY avg_anosesco DESC, uf ASC LIMIT 1) AS answer,
    (SELECT count(*) FROM publico_alvo WHERE anosesco IS NOT NULL) AS row_count
