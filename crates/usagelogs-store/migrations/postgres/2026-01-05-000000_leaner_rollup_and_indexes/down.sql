CREATE INDEX log_entries_repository_kind ON log_entries (repository_id, kind_id, datetime, id)
    WHERE repository_id IS NOT NULL;

DROP INDEX log_entries_namespace_performer;
CREATE INDEX log_entries_namespace_performer ON log_entries (namespace_id, performer_id, datetime, id)
    WHERE performer_id IS NOT NULL;

ALTER TABLE daily_counts RESET (fillfactor);
ALTER TABLE daily_counts DROP CONSTRAINT daily_counts_pkey;
ALTER TABLE daily_counts ADD COLUMN performer_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE daily_counts ALTER COLUMN performer_id DROP DEFAULT;
ALTER TABLE daily_counts ADD PRIMARY KEY (namespace_id, repository_id, performer_id, day, kind_id);
INSERT INTO daily_counts (namespace_id, repository_id, performer_id, day, kind_id, count)
    SELECT namespace_id, 0, performer_id, (datetime AT TIME ZONE 'UTC')::date, kind_id, count(*)
    FROM log_entries WHERE performer_id IS NOT NULL
    GROUP BY namespace_id, performer_id, (datetime AT TIME ZONE 'UTC')::date, kind_id;
