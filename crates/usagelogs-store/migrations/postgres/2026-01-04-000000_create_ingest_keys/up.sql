-- Ingestion batches answered under an Idempotency-Key, so a retried batch is stored once even
-- when it reaches another replica or a restarted server. Kept for a day.
CREATE TABLE ingest_keys (
    caller     TEXT NOT NULL,
    key        TEXT NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    accepted   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX ingest_keys_created_at ON ingest_keys (created_at);
