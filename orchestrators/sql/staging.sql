-- staging: the lab's STAGING_SQL (backfill_lab/demo/daily.py), word for word; Dagster and
-- Airflow bind $partition, $window_start and $window_end as the lab does, and fill
-- {raw}/{staging} with table names. tests/test_orchestrators.py keeps it in step.
SELECT date, event_id, entity_id, event_time, amount, category
FROM {raw}
WHERE date = $partition AND amount IS NOT NULL AND entity_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_time) = 1
