//! dokko-ingest end to end, the way clients meet it: dokko-api and dokko-ingest both running on
//! loopback ports and calling each other with service tokens, one PostgreSQL database with both
//! schemas, the S3 server of the test kit, and the extractor child run from the real binary.
//! Every call a test makes goes through dokko-api's public routes.

mod console;
mod embedding;
mod filters;
mod formats;
mod hardening;
mod processing;
mod restart;
mod retrieval;
mod schema;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use service_kit::{Env, db};
use testkit::{Client, EmbeddingsServer, S3Server, TestDb, TestServer};
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const INTERNAL_SECRET: &str = "internal-secret-internal-secret-0123456789";
pub const PASSWORD: &str = "correct horse battery staple";

/// dokko-api and dokko-ingest with their database and object storage.
pub struct Stack {
    pub db: TestDb,
    pub s3: S3Server,
    pub api: TestServer,
    pub ingest: Option<TestServer>,
    pub api_settings: dokko_api::Settings,
    pub ingest_settings: dokko_ingest::Settings,
    pub embeddings: Option<EmbeddingsServer>,
    index_dir: PathBuf,
    ingest_addr: std::net::SocketAddr,
}

/// A provisioned organisation with a service account's client.
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub source_id: Uuid,
    /// A client with a service-account token.
    pub client: Client,
}

impl Stack {
    pub async fn spawn() -> Stack {
        Self::spawn_with(|env| env).await
    }

    /// Spawns with dokko-ingest's settings adjusted.
    pub async fn spawn_with(adjust: impl FnOnce(Env) -> Env) -> Stack {
        Self::spawn_full(false, adjust).await
    }

    /// Spawns with the test kit's embeddings server configured (vector search on).
    pub async fn spawn_with_embeddings() -> Stack {
        Self::spawn_full(true, |env| env).await
    }

    /// Spawns with `server` as the embeddings endpoint (`EMBEDDINGS_URL`).
    pub async fn spawn_with_server(server: EmbeddingsServer, adjust: impl FnOnce(Env) -> Env) -> Stack {
        Self::spawn_server(Some(server), adjust).await
    }

    async fn spawn_full(embeddings: bool, adjust: impl FnOnce(Env) -> Env) -> Stack {
        let server = embeddings.then(|| EmbeddingsServer::start().expect("embeddings server starts"));
        Self::spawn_server(server, adjust).await
    }

    async fn spawn_server(embeddings: Option<EmbeddingsServer>, adjust: impl FnOnce(Env) -> Env) -> Stack {
        let db = TestDb::new("dokko_ingest", |url| async move {
            dokko_api::migrate(&url).await?;
            dokko_ingest::migrate(&url).await
        })
        .await
        .expect("test database");
        let s3 = S3Server::start().expect("S3 server starts");
        let api_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ingest_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let api_url = format!("http://{}", api_listener.local_addr().expect("addr"));
        let ingest_addr = ingest_listener.local_addr().expect("addr");
        let ingest_url = format!("http://{ingest_addr}");
        let api_env = Env::default()
            .with("DATABASE_URL", &db.url)
            .with("DATABASE_POOL_SIZE", "4")
            .with("HTTP_WORKERS", "1")
            .with("JWT_SECRET", JWT_SECRET)
            .with("INTERNAL_TOKEN_SECRET", INTERNAL_SECRET)
            .with("INGEST_URL", &ingest_url)
            .with("S3_ENDPOINT", s3.endpoint())
            .with("S3_REGION", s3.region())
            .with("S3_ACCESS_KEY_ID", s3.access_key())
            .with("S3_SECRET_ACCESS_KEY", s3.secret_key())
            .with("PASSWORD_HASH_CONCURRENCY", "2");
        let api_settings = dokko_api::Settings::from_env(&api_env).expect("valid dokko-api settings");
        let index_dir = std::env::temp_dir().join(format!("dokko-ingest-test-{}", Uuid::new_v4()));
        let mut ingest_env = Env::default()
            .with("DATABASE_URL", &db.url)
            .with("DATABASE_POOL_SIZE", "6")
            .with("HTTP_WORKERS", "1")
            .with("INTERNAL_TOKEN_SECRET", INTERNAL_SECRET)
            .with("DOKKO_API_URL", &api_url)
            .with("S3_ENDPOINT", s3.endpoint())
            .with("S3_REGION", s3.region())
            .with("S3_ACCESS_KEY_ID", s3.access_key())
            .with("S3_SECRET_ACCESS_KEY", s3.secret_key())
            .with("INDEX_DIR", index_dir.to_string_lossy())
            .with("EXTRACTOR_PROGRAM", env!("CARGO_BIN_EXE_dokko-ingest"))
            .with("EXTRACT_TIMEOUT_SECS", "20")
            .with("WORKER_POLL_MILLIS", "50")
            .with("CHUNK_SIZE", "400")
            .with("CHUNK_OVERLAP", "40");
        if let Some(server) = &embeddings {
            ingest_env = ingest_env.with("EMBEDDINGS_URL", server.url()).with("EMBEDDINGS_MODEL", "test-bag-of-words");
        }
        let ingest_settings =
            dokko_ingest::Settings::from_env(&adjust(ingest_env)).expect("valid dokko-ingest settings");
        let api = {
            let settings = api_settings.clone();
            TestServer::start_on(api_listener, move |l| dokko_api::start(settings, l)).expect("dokko-api starts")
        };
        let ingest = {
            let settings = ingest_settings.clone();
            TestServer::start_on(ingest_listener, move |l| dokko_ingest::start(settings, l))
                .expect("dokko-ingest starts")
        };
        Stack { db, s3, api, ingest: Some(ingest), api_settings, ingest_settings, embeddings, index_dir, ingest_addr }
    }

    /// Stops dokko-ingest at once (its runners and child processes with it).
    pub fn stop_ingest(&mut self) {
        if let Some(mut server) = self.ingest.take() {
            server.stop();
        }
    }

    /// Stops dokko-ingest as SIGTERM does, and returns once it has shut down.
    pub fn stop_ingest_gracefully(&mut self) {
        if let Some(mut server) = self.ingest.take() {
            server.stop_gracefully();
        }
    }

    /// Starts dokko-ingest again on its port, with `adjust`ed settings, on the same database
    /// (and, unless `fresh_index`, the same index folder).
    pub fn start_ingest(&mut self, fresh_index: bool, adjust: impl FnOnce(&mut dokko_ingest::Settings)) {
        let mut settings = self.ingest_settings.clone();
        if fresh_index {
            settings.index_dir = self.index_dir.join(Uuid::new_v4().to_string());
        }
        adjust(&mut settings);
        let listener = TcpListener::bind(self.ingest_addr).expect("rebind dokko-ingest's port");
        self.ingest = Some(
            TestServer::start_on(listener, move |l| dokko_ingest::start(settings, l)).expect("dokko-ingest restarts"),
        );
    }

    /// Starts another replica of dokko-ingest on a port of its own, same database, own index.
    pub fn replica(&self) -> TestServer {
        let mut settings = self.ingest_settings.clone();
        settings.index_dir = self.index_dir.join(Uuid::new_v4().to_string());
        TestServer::start(move |l| dokko_ingest::start(settings, l)).expect("replica starts")
    }

    pub fn anonymous(&self) -> Client {
        Client::new(self.api.url())
    }

    /// A provisioned organisation with a service account signed in.
    pub async fn org(&self, name: &str) -> Org {
        let storage = dokko_api::storage::Storage::new(&self.api_settings.s3).expect("storage");
        let pool = db::pool(&self.api_settings.database).expect("pool");
        let email = format!("admin@{name}.example");
        let p = dokko_api::admin::create_tenant(&pool, &storage, &self.api_settings, name, &email, None)
            .await
            .unwrap_or_else(|e| panic!("provisioning {name}: {e}"));
        pool.close();
        let res = self
            .anonymous()
            .post_json("/api/v1/auth/invitations/accept", &json!({"token": p.invitation.token, "password": PASSWORD}))
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        let res = self
            .anonymous()
            .with_header("X-Tenant", name)
            .post_form("/api/v1/auth/login", &[("email", email.as_str()), ("password", PASSWORD)])
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        let admin =
            self.anonymous().with_header("Authorization", &format!("Bearer {}", str_of(&res.body, "access_token")));
        let res = admin.post_json("/api/v1/admin/service-accounts", &json!({"name": "integration"})).await;
        assert_eq!(res.status, 201, "{}", res.text);
        let (client_id, secret) =
            (str_of(&res.body, "client_id").to_owned(), str_of(&res.body, "client_secret").to_owned());
        let res = self
            .anonymous()
            .with_header("X-Tenant", name)
            .post_form("/api/v1/auth/service/login", &[("client_id", &client_id), ("client_secret", &secret)])
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        let client =
            self.anonymous().with_header("Authorization", &format!("Bearer {}", str_of(&res.body, "access_token")));
        Org { id: p.tenant_id, name: name.to_owned(), source_id: p.document_source_id, client }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_ingest();
        let _ = std::fs::remove_dir_all(&self.index_dir);
    }
}

impl Org {
    /// Creates a permission; its id.
    pub async fn permission(&self, name: &str) -> String {
        let res = self.client.post_json("/api/v1/permissions", &json!({ "name": name })).await;
        assert_eq!(res.status, 201, "{}", res.text);
        str_of(&res.body, "id").to_owned()
    }

    /// Creates a repository carrying `permission_ids`; its id.
    pub async fn repository(&self, name: &str, permission_ids: &[&str]) -> String {
        let res = self
            .client
            .post_json(
                "/api/v1/repositories",
                &json!({"name": name, "document_source_id": self.source_id, "type": "semantic", "permission_ids": permission_ids}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        str_of(&res.body, "id").to_owned()
    }

    /// Uploads `files` (path, bytes) into a repository; every one must succeed. Their file ids,
    /// by path.
    pub async fn upload(&self, repository_id: &str, files: &[(&str, &[u8])]) -> Vec<String> {
        let parts: Vec<Part<'_>> = files.iter().map(|(path, bytes)| Part::File("files", path, bytes)).collect();
        let path = format!("/api/v1/repositories/{repository_id}/items");
        let res = multipart(&self.client, reqwest::Method::POST, &path, &parts).await;
        assert_eq!(res.status, 200, "{}", res.text);
        self.file_ids(repository_id, &files.iter().map(|(p, _)| *p).collect::<Vec<_>>()).await
    }

    /// The file ids of `paths` in a repository.
    pub async fn file_ids(&self, repository_id: &str, paths: &[&str]) -> Vec<String> {
        let mut ids = Vec::new();
        for path in paths {
            let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
            let res = self.client.get(&format!("/api/v1/repositories/{repository_id}/items")).await;
            assert_eq!(res.status, 200, "{}", res.text);
            let mut node = &res.body;
            for part in folder.split('/').filter(|p| !p.is_empty()) {
                node = &node["folders"][part];
            }
            ids.push(str_of(&node["files"][name], "file_id").to_owned());
        }
        ids
    }

    /// Replaces a file's content (same path, same file id).
    pub async fn replace(&self, repository_id: &str, path: &str, bytes: &[u8]) {
        let ops = json!({"items": [{"path": path, "type": "file"}]}).to_string();
        let res = multipart(
            &self.client,
            reqwest::Method::PATCH,
            &format!("/api/v1/repositories/{repository_id}/items"),
            &[Part::Field("operations", &ops), Part::File("files", path, bytes)],
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.text);
    }

    /// Deletes files by path.
    pub async fn delete(&self, repository_id: &str, paths: &[&str]) {
        let path = format!("/api/v1/repositories/{repository_id}/items");
        let res =
            self.client.send(self.client.request(reqwest::Method::DELETE, &path).json(&json!({"items": paths}))).await;
        assert!(res.status == 200 || res.status == 204, "{} {}", res.status, res.text);
    }

    /// Sets a file's metadata.
    pub async fn set_metadata(&self, file_id: &str, metadata: Value) {
        let res =
            self.client.put_json(&format!("/api/v1/files/{file_id}/metadata"), &json!({"metadata": metadata})).await;
        assert_eq!(res.status, 200, "{}", res.text);
    }

    /// Starts processing; the 202 body.
    pub async fn start(&self) -> Value {
        let res = self.client.post(&format!("/api/v1/document-sources/{}/process", self.source_id)).await;
        assert_eq!(res.status, 202, "{}", res.text);
        res.body
    }

    /// The processing status answer.
    pub async fn status(&self) -> testkit::Response {
        self.client.get(&format!("/api/v1/document-sources/{}/process/status", self.source_id)).await
    }

    /// Waits until the job is no longer RUNNING; its status.
    pub async fn wait(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let res = self.status().await;
            assert_eq!(res.status, 200, "{}", res.text);
            if res.body["status"] != "RUNNING" {
                return res.body;
            }
            assert!(Instant::now() < deadline, "the job is still running: {}", res.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a job and waits for its end; the final status, which must be COMPLETED.
    pub async fn process(&self) -> Value {
        self.start().await;
        let status = self.wait().await;
        assert_eq!(status["status"], "COMPLETED", "{status}");
        status
    }

    /// Waits until every chunk of the source has its vector (the background embedding); the
    /// status then.
    pub async fn wait_embedded(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let res = self.status().await;
            assert_eq!(res.status, 200, "{}", res.text);
            let statistics = &res.body["statistics"];
            assert!(statistics["chunksToEmbed"].is_i64(), "no embedding progress: {}", res.body);
            if statistics["chunksToEmbed"] == 0 {
                return res.body;
            }
            assert!(Instant::now() < deadline, "chunks still wait for vectors: {}", res.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The per-file outcomes of the last job, optionally of one status.
    pub async fn job_files(&self, status: Option<&str>) -> Vec<Value> {
        let mut path = format!("/api/v1/document-sources/{}/process/files?per_page=100", self.source_id);
        if let Some(status) = status {
            path.push_str(&format!("&status={status}"));
        }
        let res = self.client.get(&path).await;
        assert_eq!(res.status, 200, "{}", res.text);
        res.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// A retrieval request's answer.
    pub async fn retrieve(&self, body: Value) -> testkit::Response {
        self.client.post_json(&format!("/api/v1/document-sources/{}/retrieve", self.source_id), &body).await
    }

    /// The keys (paths) of the chunks `query` retrieves, best first (one entry per chunk).
    pub async fn search(&self, query: &str) -> Vec<String> {
        self.search_with(json!({"query": query, "top_k": 50})).await
    }

    pub async fn search_with(&self, body: Value) -> Vec<String> {
        let res = self.retrieve(body).await;
        assert_eq!(res.status, 200, "{}", res.text);
        res.body["results"].as_array().expect("results").iter().map(|r| str_of(r, "key").to_owned()).collect()
    }
}

/// The five counters of a status answer, in the seed's order.
pub fn counters(status: &Value) -> [i64; 5] {
    let s = &status["statistics"];
    [
        "numberOfDocumentsScanned",
        "numberOfNewDocumentsIndexed",
        "numberOfModifiedDocumentsIndexed",
        "numberOfDocumentsDeleted",
        "numberOfDocumentsFailed",
    ]
    .map(|name| s[name].as_i64().unwrap_or_else(|| panic!("{name} missing in {status}")))
}

/// `value[key]` as a string.
pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

pub use testkit::Part;

/// Sends a multipart request built by hand (so filenames go out exactly as written).
pub async fn multipart(client: &Client, method: reqwest::Method, path: &str, parts: &[Part<'_>]) -> testkit::Response {
    client.multipart(method, path, parts).await
}
