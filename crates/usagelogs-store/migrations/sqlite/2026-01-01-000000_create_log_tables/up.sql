-- Usage logs on SQLite. Times are UTC microseconds since 1970-01-01 00:00:00 (INTEGER); days in
-- the rollup are ISO dates ('YYYY-MM-DD'), the UTC calendar day of the entries counted.

CREATE TABLE namespaces (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255)
);

CREATE TABLE repositories (
    id           INTEGER PRIMARY KEY,
    namespace_id INTEGER NOT NULL REFERENCES namespaces (id),
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    UNIQUE (namespace_id, name)
);

CREATE TABLE performers (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
    -- The latest e-mail ingested for this performer, if any.
    email TEXT
);

CREATE TABLE kinds (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255)
);

-- The ids point into the tables above. As in Quay's logentry3, there are no foreign keys on
-- this append-only table: the checks cost about as much as the insert itself, the only writer
-- (insert_batch) takes the ids from those tables in the same transaction, and names are never
-- deleted.
CREATE TABLE log_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace_id  INTEGER NOT NULL,
    repository_id INTEGER,
    performer_id  INTEGER,
    kind_id       INTEGER NOT NULL,
    datetime      INTEGER NOT NULL,
    ip            TEXT CHECK (ip IS NULL OR length(ip) <= 255),
    metadata      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);

-- Every list page is one index seek: scope [, performer | kind], then (datetime, id).
CREATE INDEX log_entries_namespace ON log_entries (namespace_id, datetime, id);
CREATE INDEX log_entries_repository ON log_entries (repository_id, datetime, id)
    WHERE repository_id IS NOT NULL;
CREATE INDEX log_entries_namespace_performer ON log_entries (namespace_id, performer_id, datetime, id)
    WHERE performer_id IS NOT NULL;
CREATE INDEX log_entries_namespace_kind ON log_entries (namespace_id, kind_id, datetime, id);
CREATE INDEX log_entries_repository_kind ON log_entries (repository_id, kind_id, datetime, id)
    WHERE repository_id IS NOT NULL;

-- Entries per (namespace, repository, performer, UTC day, kind), maintained in the transaction
-- that inserts the entries. repository_id 0 = the whole namespace; performer_id 0 = anyone.
-- Each entry counts in (ns, 0, 0), in (ns, 0, performer) when it has a performer and in
-- (ns, repository, 0) when it has a repository. No foreign keys, as for log_entries (and 0 is no id).
CREATE TABLE daily_counts (
    namespace_id  INTEGER NOT NULL,
    repository_id INTEGER NOT NULL,
    performer_id  INTEGER NOT NULL,
    day           TEXT NOT NULL,
    kind_id       INTEGER NOT NULL,
    count         INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (namespace_id, repository_id, performer_id, day, kind_id)
) WITHOUT ROWID;

-- Quay's catalog of kinds, in Quay's order.
INSERT INTO kinds (name) VALUES
    ('user_create'),
    ('user_delete'),
    ('user_disable'),
    ('user_enable'),
    ('user_change_email'),
    ('user_change_password'),
    ('user_change_name'),
    ('user_change_invoicing'),
    ('user_change_tag_expiration'),
    ('user_change_metadata'),
    ('user_generate_client_key'),
    ('account_change_plan'),
    ('account_change_cc'),
    ('account_change_password'),
    ('account_convert'),
    ('create_robot'),
    ('delete_robot'),
    ('create_robot_federation'),
    ('delete_robot_federation'),
    ('federated_robot_token_exchange'),
    ('create_repo'),
    ('push_repo'),
    ('push_repo_failed'),
    ('pull_repo'),
    ('pull_repo_failed'),
    ('delete_repo'),
    ('create_tag'),
    ('move_tag'),
    ('delete_tag'),
    ('delete_tag_failed'),
    ('revert_tag'),
    ('add_repo_permission'),
    ('change_repo_permission'),
    ('delete_repo_permission'),
    ('change_repo_visibility'),
    ('change_repo_trust'),
    ('add_repo_accesstoken'),
    ('delete_repo_accesstoken'),
    ('set_repo_description'),
    ('change_repo_state'),
    ('build_dockerfile'),
    ('org_create'),
    ('org_delete'),
    ('org_create_team'),
    ('org_delete_team'),
    ('org_invite_team_member'),
    ('org_delete_team_member_invite'),
    ('org_add_team_member'),
    ('org_team_member_invite_accepted'),
    ('org_team_member_invite_declined'),
    ('org_remove_team_member'),
    ('org_set_team_description'),
    ('org_set_team_role'),
    ('org_change_email'),
    ('org_change_invoicing'),
    ('org_change_tag_expiration'),
    ('org_change_name'),
    ('create_prototype_permission'),
    ('modify_prototype_permission'),
    ('delete_prototype_permission'),
    ('setup_repo_trigger'),
    ('delete_repo_trigger'),
    ('create_application'),
    ('update_application'),
    ('delete_application'),
    ('reset_application_client_secret'),
    ('add_repo_webhook'),
    ('delete_repo_webhook'),
    ('add_repo_notification'),
    ('delete_repo_notification'),
    ('reset_repo_notification'),
    ('create_namespace_notification'),
    ('delete_namespace_notification'),
    ('reset_namespace_notification'),
    ('regenerate_robot_token'),
    ('repo_verb'),
    ('repo_mirror_enabled'),
    ('repo_mirror_disabled'),
    ('repo_mirror_config_changed'),
    ('repo_mirror_sync_started'),
    ('repo_mirror_sync_failed'),
    ('repo_mirror_sync_success'),
    ('repo_mirror_sync_now_requested'),
    ('repo_mirror_sync_tag_success'),
    ('repo_mirror_sync_tag_failed'),
    ('repo_mirror_sync_test_success'),
    ('repo_mirror_sync_test_failed'),
    ('repo_mirror_sync_test_started'),
    ('org_mirror_enabled'),
    ('org_mirror_disabled'),
    ('org_mirror_config_changed'),
    ('org_mirror_sync_started'),
    ('org_mirror_sync_failed'),
    ('org_mirror_sync_success'),
    ('org_mirror_sync_now_requested'),
    ('org_mirror_sync_cancelled'),
    ('org_mirror_repo_created'),
    ('service_key_create'),
    ('service_key_approve'),
    ('service_key_delete'),
    ('service_key_modify'),
    ('service_key_extend'),
    ('service_key_rotate'),
    ('take_ownership'),
    ('manifest_label_add'),
    ('manifest_label_delete'),
    ('change_tag_expiration'),
    ('change_tag_immutability'),
    ('toggle_repo_trigger'),
    ('create_immutability_policy'),
    ('update_immutability_policy'),
    ('delete_immutability_policy'),
    ('tag_made_immutable_by_policy'),
    ('tags_made_immutable_by_policy'),
    ('create_app_specific_token'),
    ('revoke_app_specific_token'),
    ('create_proxy_cache_config'),
    ('delete_proxy_cache_config'),
    ('start_build_trigger'),
    ('cancel_build'),
    ('login_success'),
    ('login_failure'),
    ('logout_success'),
    ('permanently_delete_tag'),
    ('autoprune_tag_delete'),
    ('create_namespace_autoprune_policy'),
    ('update_namespace_autoprune_policy'),
    ('delete_namespace_autoprune_policy'),
    ('create_repository_autoprune_policy'),
    ('update_repository_autoprune_policy'),
    ('delete_repository_autoprune_policy'),
    ('enable_team_sync'),
    ('disable_team_sync'),
    ('oauth_token_assigned'),
    ('oauth_token_revoked'),
    ('export_logs_success'),
    ('export_logs_failure'),
    ('org_create_quota'),
    ('org_change_quota'),
    ('org_delete_quota'),
    ('org_create_quota_limit'),
    ('org_change_quota_limit'),
    ('org_delete_quota_limit'),
    ('create_oauth_api_token'),
    ('revoke_oauth_api_token'),
    ('org_mirror_repo_creation_failed');
