-- question: Average income of women in the Norte region with a degree, aged 25 to 35, whose cor is Preta or Parda.
-- unit: R$
-- rows: women in the Norte region with graduacao = 'Sim', aged 25 to 35 inclusive, cor Preta or Parda.
SELECT
    avg(renda) AS answer,
    count(*) AS row_count
FROM publico_alvo
WHERE regiao_sigla = 'N'
  AND sexo = 'Mulher'
  AND graduacao = 'Sim'
  AND idade BETWEEN 25 AND 35
  AND cor IN ('Preta', 'Parda')
