-- question: Average income of residents of Distrito Federal.
-- unit: R$
-- rows: the target public living in Distrito Federal.
SELECT
    avg(renda) AS answer,
    count(*) AS row_count
FROM publico_alvo
WHERE uf_sigla = 'DF'
