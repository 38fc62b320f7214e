-- question: Income per mesoregion in Minas Gerais: all income in MG divided by the number of MG mesoregions.
-- unit: R$
-- rows: the target public living in Minas Gerais. The mesoregion count comes from the IBGE dimension.
SELECT
    sum(p.renda) / CAST((SELECT count(*) FROM mesorregioes WHERE uf_sigla = 'MG') AS DOUBLE) AS answer,
    count(*) AS row_count
FROM publico_alvo AS p
WHERE p.uf_sigla = 'MG'
