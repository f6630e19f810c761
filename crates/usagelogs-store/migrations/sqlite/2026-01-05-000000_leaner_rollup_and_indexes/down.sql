CREATE INDEX log_entries_repository_kind ON log_entries (repository_id, kind_id, datetime, id)
    WHERE repository_id IS NOT NULL;

DROP INDEX log_entries_namespace_performer;
CREATE INDEX log_entries_namespace_performer ON log_entries (namespace_id, performer_id, datetime, id)
    WHERE performer_id IS NOT NULL;

CREATE TABLE daily_counts_old (
    namespace_id  INTEGER NOT NULL,
    repository_id INTEGER NOT NULL,
    performer_id  INTEGER NOT NULL,
    day           TEXT NOT NULL,
    kind_id       INTEGER NOT NULL,
    count         INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (namespace_id, repository_id, performer_id, day, kind_id)
) WITHOUT ROWID;
INSERT INTO daily_counts_old (namespace_id, repository_id, performer_id, day, kind_id, count)
    SELECT namespace_id, repository_id, 0, day, kind_id, count FROM daily_counts;
INSERT INTO daily_counts_old (namespace_id, repository_id, performer_id, day, kind_id, count)
    SELECT namespace_id, 0, performer_id, date(datetime / 1000000, 'unixepoch'), kind_id, count(*)
    FROM log_entries WHERE performer_id IS NOT NULL
    GROUP BY namespace_id, performer_id, date(datetime / 1000000, 'unixepoch'), kind_id;
DROP TABLE daily_counts;
ALTER TABLE daily_counts_old RENAME TO daily_counts;
