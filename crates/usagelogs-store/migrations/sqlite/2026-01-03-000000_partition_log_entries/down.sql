-- PostgreSQL partitions log_entries by month in this version; SQLite keeps one table (retention
-- deletes from it in batches). A no-op, so both dialects have the same migration versions.
SELECT 1;
