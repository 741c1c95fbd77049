//! The nested folder/file shape of `GET /repositories/{id}/items`, of upload results and of
//! `GET /document-sources/{id}/folder-structure`.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::paths;

/// A folder: its sub-folders and files by name.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Folder<F: Serialize + ToSchema + 'static> {
    #[schema(no_recursion)]
    pub folders: BTreeMap<String, Folder<F>>,
    pub files: BTreeMap<String, F>,
    /// The repository a folder-structure level stands for; `{}` elsewhere.
    #[schema(value_type = Object)]
    pub repository: serde_json::Map<String, serde_json::Value>,
    pub is_locked: bool,
}

impl<F: Serialize + ToSchema + 'static> Folder<F> {
    pub fn new() -> Self {
        Self { folders: BTreeMap::new(), files: BTreeMap::new(), repository: serde_json::Map::new(), is_locked: false }
    }

    /// The folder at `path` (`""` is this one), created with its parents when missing.
    pub fn folder_mut(&mut self, path: &str) -> &mut Folder<F> {
        let mut node = self;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            node = node.folders.entry(segment.to_owned()).or_insert_with(Folder::new);
        }
        node
    }

    /// Puts `file` at `path`.
    pub fn insert_file(&mut self, path: &str, file: F) {
        self.folder_mut(paths::parent(path)).files.insert(paths::file_name(path).to_owned(), file);
    }
}

/// Only the folders and files of a tree (the `result` of upload answers).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Listing<F: Serialize + ToSchema + 'static> {
    pub folders: BTreeMap<String, Folder<F>>,
    pub files: BTreeMap<String, F>,
}

impl<F: Serialize + ToSchema + 'static> From<Folder<F>> for Listing<F> {
    fn from(root: Folder<F>) -> Self {
        Self { folders: root.folders, files: root.files }
    }
}

/// A file in a repository tree.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileItem {
    pub name: String,
    /// The extension, lower case, without the dot.
    pub ext: String,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_modified: OffsetDateTime,
    /// The path from the repository root.
    pub key: String,
    pub is_locked: bool,
    /// SHA-256 of the content.
    pub e_tag: String,
    pub size: i64,
    /// `v1`, `v2`, …: one more each time the content is replaced.
    pub version_id: String,
    /// The id of the Files API (`/files/{file_id}`).
    pub file_id: Uuid,
}

/// A file in a document source's folder structure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceFileItem {
    /// The path from the repository root.
    pub key: String,
    pub filename: String,
    pub size: i64,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "domain::timestamp::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    pub bucket_name: String,
    pub file_id: Uuid,
}
