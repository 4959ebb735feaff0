-- features: per entity and day, 1-day and trailing 7-day purchase features. The window reaches
-- 6 days before the batch, so staging is read unfiltered (.render()) and filtered here.
{% set partition = "CAST('" ~ model.batch.event_time_start.strftime('%Y-%m-%d') ~ "' AS DATE)" %}
WITH w AS (
    SELECT date, entity_id, CAST(amount AS DECIMAL(18, 2)) AS amount
    FROM {{ ref('staging').render() }}
    WHERE date BETWEEN {{ partition }} - 6 AND {{ partition }}
)
SELECT
    {{ partition }} AS date,
    entity_id,
    count(*) FILTER (WHERE date = {{ partition }}) AS events_1d,
    CAST(sum(amount) FILTER (WHERE date = {{ partition }}) AS DOUBLE) AS amount_1d,
    round(CAST(sum(amount) FILTER (WHERE date = {{ partition }}) AS DOUBLE)
          / count(*) FILTER (WHERE date = {{ partition }}), 4) AS avg_amount_1d,
    count(*) AS events_7d,
    CAST(sum(amount) AS DOUBLE) AS amount_7d
FROM w
GROUP BY entity_id
HAVING count(*) FILTER (WHERE date = {{ partition }}) > 0
