-- question: Average schooling of women in Paraná aged 25 to 30.
-- unit: years
-- rows: women in Paraná aged 25 to 30 inclusive.
SELECT
    avg(anosesco) AS answer,
    count(*) AS row_count
FROM publico_alvo
WHERE sexo = 'Mulher'
  AND uf_sigla = 'PR'
  AND idade BETWEEN 25 AND 30
