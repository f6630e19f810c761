//! The tables, as Diesel sees them. One description serves both dialects: the two column types
//! that differ ([`UtcMicros`], [`JsonObject`]) are mapped per backend in [`super::types`].

use super::types::{JsonObject, UtcMicros};

diesel::table! {
    namespaces (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    repositories (id) {
        id -> BigInt,
        namespace_id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    performers (id) {
        id -> BigInt,
        name -> Text,
        email -> Nullable<Text>,
    }
}

diesel::table! {
    kinds (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::{JsonObject, UtcMicros};

    log_entries (id) {
        id -> BigInt,
        namespace_id -> BigInt,
        repository_id -> Nullable<BigInt>,
        performer_id -> Nullable<BigInt>,
        kind_id -> BigInt,
        datetime -> UtcMicros,
        ip -> Nullable<Text>,
        metadata -> JsonObject,
    }
}

diesel::table! {
    daily_counts (namespace_id, repository_id, day, kind_id) {
        namespace_id -> BigInt,
        repository_id -> BigInt,
        day -> Date,
        kind_id -> BigInt,
        count -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::UtcMicros;

    export_jobs (id) {
        id -> Text,
        level -> Text,
        namespace -> Text,
        repository -> Nullable<Text>,
        window_start -> UtcMicros,
        window_end -> UtcMicros,
        format -> Text,
        callback_url -> Nullable<Text>,
        callback_email -> Nullable<Text>,
        requested_by -> Text,
        link_base -> Text,
        status -> Text,
        attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<UtcMicros>,
        file_id -> Nullable<Text>,
        entries -> Nullable<BigInt>,
        error -> Nullable<Text>,
        created_at -> UtcMicros,
        finished_at -> Nullable<UtcMicros>,
        expires_at -> Nullable<UtcMicros>,
    }
}

diesel::joinable!(log_entries -> namespaces (namespace_id));
diesel::joinable!(log_entries -> repositories (repository_id));
diesel::joinable!(log_entries -> performers (performer_id));
diesel::joinable!(log_entries -> kinds (kind_id));
diesel::allow_tables_to_appear_in_same_query!(namespaces, repositories, performers, kinds, log_entries, daily_counts);
