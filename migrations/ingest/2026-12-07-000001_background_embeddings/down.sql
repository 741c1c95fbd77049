DROP INDEX ingest.chunks_embedded_seq_idx;
DROP INDEX ingest.chunks_unembedded_idx;
ALTER TABLE ingest.chunks DROP COLUMN embedded_seq;
ALTER TABLE ingest.chunks DROP COLUMN embed_lease_until;
ALTER TABLE ingest.sources DROP COLUMN embedding_model;
ALTER TABLE ingest.sources DROP COLUMN vectors_version;
