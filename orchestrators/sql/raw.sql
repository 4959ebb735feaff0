-- raw: the day's events copied from the source system. The lab's raw layer reads its seeded
-- EventSource in Python; the mirrors read the same events from a Parquet file ($source).
SELECT date, event_id, entity_id, event_time, amount, category
FROM read_parquet($source)
WHERE date = $partition
