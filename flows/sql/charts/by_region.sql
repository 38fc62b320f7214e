-- chart: average income and schooling of the target public by region
-- units: avg_renda=R$, avg_anosesco=years
-- Regions come from the IBGE dimension (LEFT JOIN): one without people still shows, as "no data".
SELECT
    r.regiao_sigla,
    r.regiao_nome,
    avg(p.renda) AS avg_renda,
    avg(p.anosesco) AS avg_anosesco,
    count(p.renda) AS with_renda,
    count(p.anosesco) AS with_anosesco,
    count(p.regiao_sigla) AS people
FROM regioes AS r
LEFT JOIN publico_alvo AS p ON p.regiao_sigla = r.regiao_sigla
GROUP BY r.regiao_sigla, r.regiao_nome
ORDER BY r.regiao_sigla
