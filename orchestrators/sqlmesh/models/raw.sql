-- raw: the day's events copied from the source system (a Parquet file, BACKFILL_SOURCE).
MODEL (
  name daily_features.raw,
  kind INCREMENTAL_BY_TIME_RANGE (time_column date, batch_size 1),
  start '2024-11-01',  -- the demo's history: 2024-11-01..2025-01-31
  end '2025-01-31',
  grain (event_id, date)
);

SELECT date, event_id, entity_id, event_time, amount, category
FROM read_parquet(@VAR('source'))
WHERE date BETWEEN @start_ds AND @end_ds
