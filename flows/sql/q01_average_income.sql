-- question: Average income (renda) of the people in the base.
-- unit: R$
-- rows: everyone in the target public.
SELECT
    avg(renda) AS answer,
    count(*) AS row_count
FROM publico_alvo
