-- staging: clean events, no null amounts or entities, one row per event id (the lab's SQL).
MODEL (
  name daily_features.staging,
  kind INCREMENTAL_BY_TIME_RANGE (time_column date, batch_size 1),
  start '2024-11-01',  -- the demo's history: 2024-11-01..2025-01-31
  end '2025-01-31',
  grain (event_id, date)
);

SELECT date, event_id, entity_id, event_time, amount, category
FROM daily_features.raw
WHERE date BETWEEN @start_ds AND @end_ds AND amount IS NOT NULL AND entity_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_time) = 1
