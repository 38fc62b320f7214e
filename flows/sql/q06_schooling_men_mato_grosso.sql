-- question: Average schooling of men in Mato Grosso.
-- unit: years
-- rows: men in Mato Grosso in the consumer zone: none, since it holds the target public (women) only,
-- so the answer is NULL ("no data"), never 0.
SELECT
    avg(anosesco) AS answer,
    count(*) AS row_count
FROM publico_alvo
WHERE sexo = 'Homem'
  AND uf_sigla = 'MT'
