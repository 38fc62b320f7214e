-- question: Average income in the Sudeste region.
-- unit: R$
-- rows: the target public living in a UF that IBGE places in the Sudeste region.
SELECT
    avg(renda) AS answer,
    count(*) AS row_count
FROM publico_alvo
WHERE regiao_sigla = 'SE'
