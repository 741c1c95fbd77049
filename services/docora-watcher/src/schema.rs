// @generated automatically by Diesel CLI.

pub mod docora {
    diesel::table! {
        docora.admin_sessions (token_digest) {
            token_digest -> Bytea,
            csrf_token -> Text,
            username -> Text,
            created_at -> Timestamptz,
            expires_at -> Timestamptz,
        }
    }

    diesel::table! {
        docora.app_repositories (app_id, repository_id) {
            app_id -> Text,
            repository_id -> Text,
            github_token_enc -> Nullable<Bytea>,
            status -> Text,
            needs_full_sync -> Bool,
            last_error -> Nullable<Text>,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
            delivered_seq -> Int8,
        }
    }

    diesel::table! {
        docora.apps (id) {
            id -> Text,
            app_name -> Text,
            base_url -> Text,
            email -> Text,
            website -> Nullable<Text>,
            description -> Nullable<Text>,
            client_auth_key_enc -> Bytea,
            token_digest -> Bytea,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
            delivery_failures -> Int4,
            breaker_open_until -> Nullable<Timestamptz>,
            breaker_trial -> Bool,
        }
    }

    diesel::table! {
        docora.repositories (id) {
            id -> Text,
            github_repo_id -> Int8,
            owner -> Text,
            name -> Text,
            is_private -> Bool,
            default_branch -> Text,
            last_commit_sha -> Nullable<Text>,
            last_scan_at -> Nullable<Timestamptz>,
            next_scan_at -> Timestamptz,
            consecutive_failures -> Int4,
            circuit_open_until -> Nullable<Timestamptz>,
            last_error -> Nullable<Text>,
            created_at -> Timestamptz,
            scan_lease_until -> Nullable<Timestamptz>,
            branch_checked_at -> Nullable<Timestamptz>,
            scan_started_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        docora.repository_files (repository_id, path, path_raw) {
            repository_id -> Text,
            path -> Text,
            blob -> Text,
            sha256 -> Text,
            size -> Int8,
            is_binary -> Bool,
            path_raw -> Bytea,
        }
    }

    diesel::table! {
        docora.scan_attempts (repository_id, started_at) {
            repository_id -> Text,
            started_at -> Timestamptz,
            ended_at -> Timestamptz,
            outcome -> Text,
            commit_sha -> Nullable<Text>,
            events -> Int4,
            error -> Nullable<Text>,
            circuit_opened -> Bool,
        }
    }

    diesel::table! {
        docora.events (id) {
            id -> Uuid,
            seq -> Int8,
            app_id -> Text,
            repository_id -> Text,
            event -> Text,
            path -> Nullable<Text>,
            payload -> Jsonb,
            commit_sha -> Nullable<Text>,
            status -> Text,
            attempts -> Int4,
            next_attempt_at -> Timestamptz,
            last_error -> Nullable<Text>,
            created_at -> Timestamptz,
            delivered_at -> Nullable<Timestamptz>,
            lease_until -> Nullable<Timestamptz>,
            redelivery_of -> Nullable<Uuid>,
        }
    }

    diesel::table! {
        docora.delivery_attempts (event_id, started_at) {
            event_id -> Uuid,
            attempt -> Int4,
            started_at -> Timestamptz,
            ended_at -> Timestamptz,
            request_url -> Nullable<Text>,
            request_headers -> Nullable<Jsonb>,
            request_body -> Nullable<Text>,
            request_body_bytes -> Nullable<Int8>,
            response_status -> Nullable<Int4>,
            response_headers -> Nullable<Jsonb>,
            response_body -> Nullable<Text>,
            response_body_truncated -> Bool,
            error -> Nullable<Text>,
        }
    }

    diesel::joinable!(app_repositories -> apps (app_id));
    diesel::joinable!(app_repositories -> repositories (repository_id));

    diesel::joinable!(repository_files -> repositories (repository_id));
    diesel::joinable!(scan_attempts -> repositories (repository_id));
    diesel::joinable!(delivery_attempts -> events (event_id));

    diesel::allow_tables_to_appear_in_same_query!(
        admin_sessions,
        app_repositories,
        apps,
        delivery_attempts,
        events,
        repositories,
        repository_files,
        scan_attempts,
    );
}
