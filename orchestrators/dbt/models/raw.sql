-- raw: the day's events copied from the source system (a Parquet file, BACKFILL_SOURCE).
-- The source is not a dbt model, so the batch's window is applied here.
select date, event_id, entity_id, event_time, amount, category
from read_parquet('{{ env_var("BACKFILL_SOURCE") }}')
where date >= cast('{{ model.batch.event_time_start }}' as timestamptz)
  and date < cast('{{ model.batch.event_time_end }}' as timestamptz)
