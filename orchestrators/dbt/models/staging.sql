-- staging: clean events, one row per event id. ref('raw') is filtered to this batch's day by
-- dbt (raw declares its event time), the lab's `WHERE date = $partition`.
SELECT date, event_id, entity_id, event_time, amount, category
FROM {{ ref('raw') }}
WHERE amount IS NOT NULL AND entity_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_time) = 1
