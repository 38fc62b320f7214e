-- question: Average income in the Sul region of people in the labour force aged 25 to 35.
-- unit: R$
-- rows: the target public in the Sul region, in the labour force, aged 25 to 35 inclusive.
SELECT
    avg(renda) AS answer,
    count(*) AS row_count
FROM publico_alvo
WHERE regiao_sigla = 'S'
  AND trab = 'Pessoas na força de trabalho'
  AND idade BETWEEN 25 AND 35
