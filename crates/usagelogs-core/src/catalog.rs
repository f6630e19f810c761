//! The catalog of log kinds: Quay's 146 names, in Quay's order.

/// Every log kind name Quay knows, in the order Quay's `initdb.py` creates them, followed by the
/// one kind that exists only through a migration.
pub const KINDS: [&str; 146] = [
    "user_create",
    "user_delete",
    "user_disable",
    "user_enable",
    "user_change_email",
    "user_change_password",
    "user_change_name",
    "user_change_invoicing",
    "user_change_tag_expiration",
    "user_change_metadata",
    "user_generate_client_key",
    "account_change_plan",
    "account_change_cc",
    "account_change_password",
    "account_convert",
    "create_robot",
    "delete_robot",
    "create_robot_federation",
    "delete_robot_federation",
    "federated_robot_token_exchange",
    "create_repo",
    "push_repo",
    "push_repo_failed",
    "pull_repo",
    "pull_repo_failed",
    "delete_repo",
    "create_tag",
    "move_tag",
    "delete_tag",
    "delete_tag_failed",
    "revert_tag",
    "add_repo_permission",
    "change_repo_permission",
    "delete_repo_permission",
    "change_repo_visibility",
    "change_repo_trust",
    "add_repo_accesstoken",
    "delete_repo_accesstoken",
    "set_repo_description",
    "change_repo_state",
    "build_dockerfile",
    "org_create",
    "org_delete",
    "org_create_team",
    "org_delete_team",
    "org_invite_team_member",
    "org_delete_team_member_invite",
    "org_add_team_member",
    "org_team_member_invite_accepted",
    "org_team_member_invite_declined",
    "org_remove_team_member",
    "org_set_team_description",
    "org_set_team_role",
    "org_change_email",
    "org_change_invoicing",
    "org_change_tag_expiration",
    "org_change_name",
    "create_prototype_permission",
    "modify_prototype_permission",
    "delete_prototype_permission",
    "setup_repo_trigger",
    "delete_repo_trigger",
    "create_application",
    "update_application",
    "delete_application",
    "reset_application_client_secret",
    "add_repo_webhook",
    "delete_repo_webhook",
    "add_repo_notification",
    "delete_repo_notification",
    "reset_repo_notification",
    "create_namespace_notification",
    "delete_namespace_notification",
    "reset_namespace_notification",
    "regenerate_robot_token",
    "repo_verb",
    "repo_mirror_enabled",
    "repo_mirror_disabled",
    "repo_mirror_config_changed",
    "repo_mirror_sync_started",
    "repo_mirror_sync_failed",
    "repo_mirror_sync_success",
    "repo_mirror_sync_now_requested",
    "repo_mirror_sync_tag_success",
    "repo_mirror_sync_tag_failed",
    "repo_mirror_sync_test_success",
    "repo_mirror_sync_test_failed",
    "repo_mirror_sync_test_started",
    "org_mirror_enabled",
    "org_mirror_disabled",
    "org_mirror_config_changed",
    "org_mirror_sync_started",
    "org_mirror_sync_failed",
    "org_mirror_sync_success",
    "org_mirror_sync_now_requested",
    "org_mirror_sync_cancelled",
    "org_mirror_repo_created",
    "service_key_create",
    "service_key_approve",
    "service_key_delete",
    "service_key_modify",
    "service_key_extend",
    "service_key_rotate",
    "take_ownership",
    "manifest_label_add",
    "manifest_label_delete",
    "change_tag_expiration",
    "change_tag_immutability",
    "toggle_repo_trigger",
    "create_immutability_policy",
    "update_immutability_policy",
    "delete_immutability_policy",
    "tag_made_immutable_by_policy",
    "tags_made_immutable_by_policy",
    "create_app_specific_token",
    "revoke_app_specific_token",
    "create_proxy_cache_config",
    "delete_proxy_cache_config",
    "start_build_trigger",
    "cancel_build",
    "login_success",
    "login_failure",
    "logout_success",
    "permanently_delete_tag",
    "autoprune_tag_delete",
    "create_namespace_autoprune_policy",
    "update_namespace_autoprune_policy",
    "delete_namespace_autoprune_policy",
    "create_repository_autoprune_policy",
    "update_repository_autoprune_policy",
    "delete_repository_autoprune_policy",
    "enable_team_sync",
    "disable_team_sync",
    "oauth_token_assigned",
    "oauth_token_revoked",
    "export_logs_success",
    "export_logs_failure",
    "org_create_quota",
    "org_change_quota",
    "org_delete_quota",
    "org_create_quota_limit",
    "org_change_quota_limit",
    "org_delete_quota_limit",
    "create_oauth_api_token",
    "revoke_oauth_api_token",
    "org_mirror_repo_creation_failed",
];

/// The six service-key kinds, which the user list and aggregate endpoints leave out (as Quay).
pub const SERVICE_KEY_KINDS: [&str; 6] = [
    "service_key_create",
    "service_key_approve",
    "service_key_delete",
    "service_key_modify",
    "service_key_extend",
    "service_key_rotate",
];

/// Whether `name` is one of Quay's kinds.
pub fn is_catalog_kind(name: &str) -> bool {
    KINDS.contains(&name)
}

/// Whether `name` is one of the six `service_key_*` kinds.
pub fn is_service_key_kind(name: &str) -> bool {
    SERVICE_KEY_KINDS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalog_has_146_distinct_names_and_the_six_service_key_kinds() {
        let set: HashSet<_> = KINDS.iter().collect();
        assert_eq!(set.len(), 146);
        for k in SERVICE_KEY_KINDS {
            assert!(is_catalog_kind(k), "{k}");
            assert!(is_service_key_kind(k));
        }
        assert_eq!(KINDS.iter().filter(|k| k.starts_with("service_key_")).count(), 6);
        assert!(!is_catalog_kind("no_such_kind"));
        assert_eq!(KINDS[0], "user_create");
        assert_eq!(KINDS[145], "org_mirror_repo_creation_failed");
    }
}
