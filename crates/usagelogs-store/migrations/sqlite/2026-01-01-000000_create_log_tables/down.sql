DROP TABLE daily_counts;
DROP TABLE log_entries;
DROP TABLE kinds;
DROP TABLE performers;
DROP TABLE repositories;
DROP TABLE namespaces;
