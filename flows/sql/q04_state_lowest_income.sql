-- question: The state with the lowest average income.
-- unit: state
-- rows: everyone whose income entered the comparison (income present).
-- Ties break by name so the answer is stable.
WITH by_state AS (
    SELECT uf, avg(renda) AS avg_renda
    FROM publico_alvo
    WHERE renda IS NOT NULL
    GROUP BY uf
)
SELECT
    (SELECT uf FROM by_state ORDER BY avg_renda ASC, uf ASC LIMIT 1) AS answer,
    (SELECT count(*) FROM publico_alvo WHERE renda IS NOT NULL) AS row_count
