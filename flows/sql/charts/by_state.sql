-- chart: average income and schooling of the target public by state
-- units: avg_renda=R$, avg_anosesco=years
-- States come from the IBGE dimension (LEFT JOIN): one without people still shows, as "no data".
SELECT
    u.uf_sigla,
    u.uf_nome,
    u.regiao_sigla,
    u.regiao_nome,
    avg(p.renda) AS avg_renda,
    avg(p.anosesco) AS avg_anosesco,
    count(p.renda) AS with_renda,
    count(p.anosesco) AS with_anosesco,
    count(p.uf_sigla) AS people
FROM ufs AS u
LEFT JOIN publico_alvo AS p ON p.uf_sigla = u.uf_sigla
GROUP BY u.uf_sigla, u.uf_nome, u.regiao_sigla, u.regiao_nome
ORDER BY u.uf_sigla
