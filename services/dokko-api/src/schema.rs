// @generated automatically by Diesel CLI.

pub mod dokko {
    diesel::table! {
        dokko.document_sources (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            #[sql_name = "type"]
            type_ -> Text,
            identifier -> Text,
            status -> Text,
            is_locked -> Bool,
            chunking_strategy -> Text,
            parser_strategy -> Text,
            embedding_model -> Nullable<Text>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        dokko.files (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            repository_id -> Uuid,
            path -> Text,
            size -> Int8,
            content_type -> Text,
            sha256 -> Text,
            version -> Int4,
            object_key -> Text,
            metadata -> Jsonb,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        dokko.folders (repository_id, path) {
            tenant_id -> Uuid,
            repository_id -> Uuid,
            path -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        dokko.invitations (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            token_digest -> Bytea,
            expires_at -> Timestamptz,
            accepted_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        dokko.object_journal (bucket, object_key) {
            object_key -> Text,
            bucket -> Text,
            reason -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        dokko.permissions (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            name -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        dokko.repositories (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            document_source_id -> Uuid,
            name -> Text,
            #[sql_name = "type"]
            type_ -> Text,
            processing_started_at -> Nullable<Timestamptz>,
            processing_ended_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
            processing_job_id -> Nullable<Uuid>,
        }
    }

    diesel::table! {
        dokko.repository_permissions (repository_id, permission_id) {
            tenant_id -> Uuid,
            repository_id -> Uuid,
            permission_id -> Uuid,
        }
    }

    diesel::table! {
        dokko.service_accounts (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            name -> Text,
            client_id -> Text,
            secret_hash -> Text,
            secret_version -> Int4,
            is_active -> Bool,
            created_at -> Timestamptz,
            last_login_at -> Nullable<Timestamptz>,
            revoked_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        dokko.tenants (id) {
            id -> Uuid,
            name -> Text,
            subscription_active -> Bool,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        dokko.users (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            email -> Text,
            password_hash -> Nullable<Text>,
            role -> Text,
            is_active -> Bool,
            created_at -> Timestamptz,
            activated_at -> Nullable<Timestamptz>,
        }
    }

    diesel::joinable!(document_sources -> tenants (tenant_id));
    diesel::joinable!(permissions -> tenants (tenant_id));
    diesel::joinable!(service_accounts -> tenants (tenant_id));
    diesel::joinable!(users -> tenants (tenant_id));

    diesel::allow_tables_to_appear_in_same_query!(
        document_sources,
        files,
        folders,
        invitations,
        object_journal,
        permissions,
        repositories,
        repository_permissions,
        service_accounts,
        tenants,
        users,
    );
}
