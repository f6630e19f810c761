-- Export jobs: one row per requested export, claimed by workers under a renewable lease.
-- Times are UTC microseconds since 1970-01-01 00:00:00 (INTEGER), as in log_entries.
CREATE TABLE export_jobs (
    id             TEXT PRIMARY KEY NOT NULL,
    level          TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    repository     TEXT,
    -- The entries exported: window_start <= datetime < window_end.
    window_start   INTEGER NOT NULL,
    window_end     INTEGER NOT NULL,
    format         TEXT NOT NULL,
    callback_url   TEXT,
    callback_email TEXT,
    requested_by   TEXT NOT NULL,
    link_base      TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'success', 'failed', 'expired')),
    -- Attempts started (claims) so far.
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Who holds a running job, and until when.
    lease_owner    TEXT,
    lease_until    INTEGER,
    -- The written file's unguessable id; kept once expired, so an old link still finds its job.
    file_id        TEXT UNIQUE,
    entries        INTEGER,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    expires_at     INTEGER,
    CHECK (window_start <= window_end)
);

-- Claiming: the oldest queued (or running, lease lapsed) job.
CREATE INDEX export_jobs_claim ON export_jobs (status, created_at, id);
-- The sweeper: successful jobs whose link expired.
CREATE INDEX export_jobs_expiry ON export_jobs (status, expires_at);
