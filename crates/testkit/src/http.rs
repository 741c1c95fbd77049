//! A small HTTP client for tests: every call returns the status, headers and the body parsed as
//! JSON (or `Value::Null` when it is not JSON) plus the raw text.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    /// The `error` message of a JSON error body.
    pub fn error(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or_default()
    }
}

/// A client for one base URL with default headers.
#[derive(Clone)]
pub struct Client {
    base: String,
    inner: reqwest::Client,
    headers: Vec<(String, String)>,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Self {
        Self { base: base.into(), inner: reqwest::Client::new(), headers: Vec::new() }
    }

    /// The same client sending `name: value` on every request.
    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let mut c = self.clone();
        c.headers.push((name.to_owned(), value.to_owned()));
        c
    }

    /// The underlying reqwest client and base URL, for requests the helpers do not cover.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.inner.request(method, format!("{}{path}", self.base));
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        req
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Response {
        let res = req.send().await.expect("request reaches the server");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("response body is readable");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str) -> Response {
        self.send(self.request(Method::POST, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.send(self.request(Method::PATCH, path).json(body)).await
    }

    /// A form-encoded POST (`application/x-www-form-urlencoded`).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.send(self.request(Method::POST, path).form(fields)).await
    }

    /// A request with a raw body and content type (malformed JSON, forms, …).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.send(self.request(method, path).header("content-type", content_type).body(body)).await
    }

    /// A multipart request built by hand, so filenames go out exactly as written (reqwest's
    /// builder would normalise them).
    pub async fn multipart(&self, method: Method, path: &str, parts: &[Part<'_>]) -> Response {
        let boundary = "----testkit-multipart-boundary-7d1b3e";
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match part {
                Part::Field(name, value) => {
                    body.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                    );
                    body.extend_from_slice(value.as_bytes());
                }
                Part::File(name, filename, bytes) => {
                    body.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                            .as_bytes(),
                    );
                    body.extend_from_slice(bytes);
                }
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.send_raw(method, path, &format!("multipart/form-data; boundary={boundary}"), body).await
    }
}

/// A part of a multipart body: a form field (name, value), or a file (field name, filename, bytes).
pub enum Part<'a> {
    Field(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}
