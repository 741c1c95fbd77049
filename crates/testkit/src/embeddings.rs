//! A small OpenAI-compatible embeddings server on a loopback port: `POST /v1/embeddings` with
//! `{"model", "input": [..]}` answers one vector per input. The vectors are real in the sense
//! that matters for tests: each is a hashed bag of the input's lower-case words (feature hashing
//! into [`DIMENSIONS`] dimensions, L2-normalised), so texts sharing words are near and texts
//! sharing none are orthogonal. Words listed with [`EmbeddingsServer::synonyms`] hash alike,
//! which is how a test shows vector search finding what keywords cannot.
//!
//! [`EmbeddingsServer::start_with`] serves the vectors of a function instead (a real model's, to
//! show that an endpoint and the same model run in-process are interchangeable).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

pub const DIMENSIONS: usize = 64;

/// Computes one vector per input (blocking; run on actix's blocking pool).
pub type EmbedFn = Arc<dyn Fn(&[String]) -> anyhow::Result<Vec<Vec<f32>>> + Send + Sync>;

#[derive(Default)]
struct State {
    /// Vectors from this function instead of the bag of words.
    vectors: Option<EmbedFn>,
    requests: usize,
    inputs: usize,
    failing: bool,
    /// word → the word it embeds as
    synonyms: HashMap<String, String>,
}

pub struct EmbeddingsServer {
    url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

#[derive(Deserialize)]
struct Request {
    model: String,
    input: Vec<String>,
}

impl EmbeddingsServer {
    pub fn start() -> anyhow::Result<EmbeddingsServer> {
        Self::start_state(State::default())
    }

    /// A server answering with `vectors`' vectors.
    pub fn start_with(vectors: EmbedFn) -> anyhow::Result<EmbeddingsServer> {
        Self::start_state(State { vectors: Some(vectors), ..State::default() })
    }

    fn start_state(state: State) -> anyhow::Result<EmbeddingsServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/v1/embeddings", listener.local_addr()?);
        let state = Arc::new(Mutex::new(state));
        let data = web::Data::from(state.clone());
        let (handle, thread) = crate::server::spawn_stand_in(listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone())
                .app_data(web::JsonConfig::default().limit(64 << 20))
                .route("/v1/embeddings", web::post().to(embeddings));
        })?;
        Ok(EmbeddingsServer { url, state, handle, thread: Some(thread) })
    }

    /// The endpoint's full URL (`EMBEDDINGS_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests answered so far (failed ones included).
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Inputs embedded so far.
    pub fn inputs(&self) -> usize {
        self.lock().inputs
    }

    /// While failing, every request answers 500.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// From now on `word` embeds exactly as `like` does.
    pub fn synonyms(&self, word: &str, like: &str) {
        self.lock().synonyms.insert(word.to_lowercase(), like.to_lowercase());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for EmbeddingsServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn embeddings(state: web::Data<Mutex<State>>, body: web::Json<Request>) -> HttpResponse {
    let vectors = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.requests += 1;
        if state.failing {
            return HttpResponse::InternalServerError().json(json!({"error": {"message": "failing on purpose"}}));
        }
        state.inputs += body.input.len();
        match &state.vectors {
            Some(vectors) => Err(vectors.clone()),
            None => Ok(body.input.iter().map(|text| embed(text, &state.synonyms)).collect::<Vec<_>>()),
        }
    };
    let vectors = match vectors {
        Ok(vectors) => vectors,
        Err(function) => {
            let input = body.input.clone();
            match web::block(move || function(&input)).await {
                Ok(Ok(vectors)) => vectors,
                Ok(Err(e)) => {
                    return HttpResponse::InternalServerError().json(json!({"error": {"message": format!("{e:#}")}}));
                }
                Err(e) => {
                    return HttpResponse::InternalServerError().json(json!({"error": {"message": e.to_string()}}));
                }
            }
        }
    };
    let data: Vec<_> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| json!({"object": "embedding", "index": index, "embedding": vector}))
        .collect();
    HttpResponse::Ok().json(json!({
        "object": "list", "data": data, "model": body.model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0}
    }))
}

/// The hashed bag of words of `text`.
fn embed(text: &str, synonyms: &HashMap<String, String>) -> Vec<f32> {
    let mut vector = vec![0f32; DIMENSIONS];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        let word = synonyms.get(&word).unwrap_or(&word);
        // FNV-1a: stable across runs and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        vector[(hash % DIMENSIONS as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}
