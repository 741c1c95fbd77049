// @generated automatically by Diesel CLI.

pub mod giistr {
    diesel::table! {
        giistr.repo_tag_assocs (id) {
            id -> Uuid,
            user_id -> Uuid,
            tag_id -> Uuid,
            repo_id -> Uuid,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        giistr.repos (id) {
            id -> Uuid,
            user_id -> Uuid,
            github_repo_id -> Text,
            repository_name -> Nullable<Text>,
            user_login -> Nullable<Text>,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        giistr.tags (id) {
            id -> Uuid,
            user_id -> Uuid,
            name -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        giistr.users (id) {
            id -> Uuid,
            github_user_id -> Int8,
            github_login -> Text,
            token_id -> Uuid,
            token_digest -> Bytea,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::joinable!(repos -> users (user_id));
    diesel::joinable!(tags -> users (user_id));

    diesel::allow_tables_to_appear_in_same_query!(repo_tag_assocs, repos, tags, users,);
}
