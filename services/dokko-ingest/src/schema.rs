// The `ingest` schema, as migrations/ingest creates it.

pub mod ingest {
    diesel::table! {
        ingest.sources (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            bucket -> Text,
            version -> Int8,
            created_at -> Timestamptz,
            vectors_version -> Int8,
            embedding_model -> Nullable<Text>,
        }
    }

    diesel::table! {
        ingest.jobs (id) {
            id -> Uuid,
            source_id -> Uuid,
            status -> Text,
            phase -> Text,
            list_cursor -> Nullable<Text>,
            scanned -> Int8,
            new_indexed -> Int8,
            modified_indexed -> Int8,
            deleted -> Int8,
            failed -> Int8,
            error -> Nullable<Text>,
            started_at -> Timestamptz,
            updated_at -> Timestamptz,
            lease_owner -> Nullable<Uuid>,
            lease_until -> Nullable<Timestamptz>,
            claims -> Int4,
        }
    }

    diesel::table! {
        ingest.files (ord) {
            ord -> Int8,
            source_id -> Uuid,
            file_id -> Uuid,
            repository_id -> Uuid,
            path -> Text,
            sha256 -> Text,
            metadata -> Jsonb,
            state -> Text,
            error -> Nullable<Text>,
            chunk_count -> Int4,
            change_seq -> Int8,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        ingest.chunks (file_ord, position) {
            file_ord -> Int8,
            position -> Int4,
            content -> Text,
            embedding -> Nullable<Bytea>,
            embed_lease_until -> Nullable<Timestamptz>,
            embedded_seq -> Nullable<Int8>,
        }
    }

    diesel::table! {
        ingest.job_files (job_id, file_id) {
            job_id -> Uuid,
            file_id -> Uuid,
            seq -> Int8,
            repository_id -> Uuid,
            path -> Text,
            sha256 -> Text,
            size -> Int8,
            object_key -> Text,
            metadata -> Jsonb,
            outcome -> Nullable<Text>,
            reason -> Nullable<Text>,
            updated_at -> Timestamptz,
        }
    }

    diesel::joinable!(jobs -> sources (source_id));
    diesel::joinable!(files -> sources (source_id));
    diesel::joinable!(chunks -> files (file_ord));
    diesel::joinable!(job_files -> jobs (job_id));
    diesel::allow_tables_to_appear_in_same_query!(sources, jobs, files, chunks, job_files);
}
