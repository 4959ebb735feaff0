-- features: the lab's FEATURES_SQL (v1) (backfill_lab/demo/daily.py), word for word; Dagster and
-- Airflow bind $partition, $window_start and $window_end as the lab does, and fill
-- {raw}/{staging} with table names. tests/test_orchestrators.py keeps it in step.
WITH w AS (
    SELECT date, entity_id, CAST(amount AS DECIMAL(18, 2)) AS amount
    FROM {staging}
    WHERE date BETWEEN $window_start AND $window_end
)
SELECT
    CAST($partition AS DATE) AS date,
    entity_id,
    count(*) FILTER (WHERE date = $partition) AS events_1d,
    CAST(sum(amount) FILTER (WHERE date = $partition) AS DOUBLE) AS amount_1d,
    round(CAST(sum(amount) FILTER (WHERE date = $partition) AS DOUBLE)
          / count(*) FILTER (WHERE date = $partition), 4) AS avg_amount_1d,
    count(*) AS events_7d,
    CAST(sum(amount) AS DOUBLE) AS amount_7d
FROM w
GROUP BY entity_id
HAVING count(*) FILTER (WHERE date = $partition) > 0
