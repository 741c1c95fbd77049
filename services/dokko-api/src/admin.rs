//! The operator's commands, run through the service binary with the service's own settings:
//!
//! ```text
//! dokko-api admin create-tenant --name acme --admin-email admin@acme.example [--embedding-model NAME]
//! dokko-api admin invite --tenant acme --email someone@acme.example [--role member|org_admin]
//! dokko-api admin set-subscription --tenant acme --active true|false
//! ```
//!
//! `create-tenant` creates the organisation, its document source (a new bucket in object
//! storage) and its first organisation admin, and prints the one-time invitation link.

// A command-line tool talks to the person at the terminal.
#![allow(clippy::print_stdout)]

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use service_kit::db;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Role;
use crate::schema::dokko::{document_sources, tenants};
use crate::storage::Storage;
use crate::users::{self, Invitation};
use crate::{Settings, tenants as tenant_queries};

pub const USAGE: &str = "\
usage:
  dokko-api                      serve the API (configuration from the environment)
  dokko-api admin create-tenant --name NAME --admin-email EMAIL [--embedding-model MODEL]
  dokko-api admin invite --tenant NAME_OR_ID --email EMAIL [--role member|org_admin]
  dokko-api admin set-subscription --tenant NAME_OR_ID --active true|false";

/// A provisioned organisation.
#[derive(Debug)]
pub struct Provisioned {
    pub tenant_id: Uuid,
    pub name: String,
    pub document_source_id: Uuid,
    pub bucket: String,
    pub invitation: Invitation,
}

/// Creates an organisation: its bucket, its document source and its first admin (invited).
/// The bucket is created first (no network call inside a transaction); if the database part
/// fails, the empty bucket is removed again.
pub async fn create_tenant(
    pool: &db::Pool,
    storage: &Storage,
    settings: &Settings,
    name: &str,
    admin_email: &str,
    embedding_model: Option<&str>,
) -> Result<Provisioned, ApiError> {
    let name = tenant_queries::valid_name(name)?;
    let email = users::valid_email(admin_email)?;
    let mut conn = db::conn(pool).await?;
    if tenant_queries::find(&mut conn, &name).await?.is_some() {
        return Err(ApiError::Conflict(format!("an organisation named {name} already exists")));
    }
    drop(conn);
    let tenant_id = Uuid::now_v7();
    let bucket = crate::storage::bucket_name(&settings.bucket_prefix, tenant_id);
    storage
        .ensure_bucket(&bucket)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot create bucket {bucket}: {e}")))?;
    let document_source_id = Uuid::now_v7();
    let mut conn = db::conn(pool).await?;
    let ttl = settings.invitation_ttl;
    let outcome = conn
        .transaction::<_, ApiError, _>(async |conn| {
            diesel::insert_into(tenants::table)
                .values((tenants::id.eq(tenant_id), tenants::name.eq(&name)))
                .execute(conn)
                .await?;
            diesel::insert_into(document_sources::table)
                .values((
                    document_sources::id.eq(document_source_id),
                    document_sources::tenant_id.eq(tenant_id),
                    document_sources::identifier.eq(&bucket),
                    document_sources::embedding_model.eq(embedding_model),
                ))
                .execute(conn)
                .await?;
            users::invite(conn, tenant_id, &email, Role::OrgAdmin, ttl).await
        })
        .await;
    match outcome {
        Ok(invitation) => Ok(Provisioned { tenant_id, name, document_source_id, bucket, invitation }),
        Err(e) => {
            if let Err(cleanup) = storage.delete_bucket(&bucket).await {
                tracing::warn!(bucket, error = %cleanup, "could not remove the bucket of a failed provisioning");
            }
            Err(e)
        }
    }
}

/// Runs `dokko-api admin <args>`: migrates, performs the command and prints its outcome.
pub async fn run(args: &[String], settings: &Settings) -> anyhow::Result<()> {
    let Some((command, flags)) = args.split_first() else { anyhow::bail!("{USAGE}") };
    let flags = service_kit::cli::Flags::parse(flags, USAGE)?;
    crate::migrate(settings.database.url.expose()).await?;
    let pool = db::pool(&settings.database)?;
    let outcome = match command.as_str() {
        "create-tenant" => {
            let storage = Storage::new(&settings.s3)?;
            let p = create_tenant(
                &pool,
                &storage,
                settings,
                flags.required("name")?,
                flags.required("admin-email")?,
                flags.optional("embedding-model"),
            )
            .await
            .map_err(describe)?;
            println!("organisation     {} ({})", p.name, p.tenant_id);
            println!("document source  {} (bucket {})", p.document_source_id, p.bucket);
            print_invitation(&p.invitation, settings, &p.name);
            Ok(())
        }
        "invite" => {
            let role = match flags.optional("role") {
                None => Role::Member,
                Some(text) => Role::parse(text).ok_or_else(|| anyhow::anyhow!("--role must be member or org_admin"))?,
            };
            let mut conn = db::conn(&pool).await?;
            let tenant = tenant_queries::require(&mut conn, flags.required("tenant")?).await.map_err(describe)?;
            let invitation =
                users::invite(&mut conn, tenant.id, flags.required("email")?, role, settings.invitation_ttl)
                    .await
                    .map_err(describe)?;
            print_invitation(&invitation, settings, &tenant.name);
            Ok(())
        }
        "set-subscription" => {
            let active = match flags.required("active")? {
                "true" => true,
                "false" => false,
                other => anyhow::bail!("--active must be true or false, got {other:?}"),
            };
            let mut conn = db::conn(&pool).await?;
            let tenant = tenant_queries::require(&mut conn, flags.required("tenant")?).await.map_err(describe)?;
            tenant_queries::set_subscription(&mut conn, tenant.id, active).await.map_err(describe)?;
            println!("organisation {}: subscription {}", tenant.name, if active { "active" } else { "inactive" });
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown admin command {other:?}\n{USAGE}")),
    };
    pool.close();
    outcome
}

fn print_invitation(invitation: &Invitation, settings: &Settings, organisation: &str) {
    println!("invited          {} as {}", invitation.email, invitation.role.as_str());
    println!("invitation link  {}", invitation.url(&settings.public_url));
    println!("expires          {}", domain::timestamp::format_rfc3339(invitation.expires_at));
    println!("(the link works once; or accept from a terminal:)");
    println!(
        "  curl -X POST {}/api/v1/auth/invitations/accept -H 'Content-Type: application/json' \\\n    -d '{{\"token\": \"{}\", \"password\": \"<choose one>\"}}'",
        settings.public_url, invitation.token
    );
    println!("then sign in with X-Tenant: {organisation}");
}

fn describe(error: ApiError) -> anyhow::Error {
    match error {
        ApiError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}
