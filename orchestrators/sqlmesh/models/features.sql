-- features: per entity and day, 1-day and trailing 7-day purchase features (the lab's SQL, one
-- day per batch). Every `date` is qualified (w.date): SQLMesh's optimizer would otherwise read
-- an unqualified `date` in HAVING as the output column.
MODEL (
  name daily_features.features,
  kind INCREMENTAL_BY_TIME_RANGE (time_column date, batch_size 1),
  start '2024-11-01',  -- the demo's history: 2024-11-01..2025-01-31
  end '2025-01-31',
  grain (entity_id, date)
);

WITH w AS (
    SELECT date, entity_id, CAST(amount AS DECIMAL(18, 2)) AS amount
    FROM daily_features.staging
    WHERE date BETWEEN CAST(@start_ds AS DATE) - 6 AND CAST(@end_ds AS DATE)
)
SELECT
    CAST(@start_ds AS DATE) AS date,
    w.entity_id,
    count(*) FILTER (WHERE w.date = CAST(@start_ds AS DATE)) AS events_1d,
    CAST(sum(w.amount) FILTER (WHERE w.date = CAST(@start_ds AS DATE)) AS DOUBLE) AS amount_1d,
    round(CAST(sum(w.amount) FILTER (WHERE w.date = CAST(@start_ds AS DATE)) AS DOUBLE)
          / count(*) FILTER (WHERE w.date = CAST(@start_ds AS DATE)), 4) AS avg_amount_1d,
    count(*) AS events_7d,
    CAST(sum(w.amount) AS DOUBLE) AS amount_7d
FROM w
GROUP BY w.entity_id
HAVING count(*) FILTER (WHERE w.date = CAST(@start_ds AS DATE)) > 0
