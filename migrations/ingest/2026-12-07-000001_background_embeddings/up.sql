-- Vectors are computed in the background: a job stores chunks without them, and the embedding
-- workers of any replica fill them in (see services/dokko-ingest/src/vectors.rs).

-- The version of the source's vectors: moved (from ingest.change_seq, source row locked last, as
-- for `version`) by every transaction that writes vectors, so "every vector up to v" is a
-- consistent cut a replica can catch up from.
ALTER TABLE ingest.sources ADD COLUMN vectors_version bigint NOT NULL DEFAULT 0;
-- The model the source's vectors come from; when the service's model changes, they are dropped
-- and computed again.
ALTER TABLE ingest.sources ADD COLUMN embedding_model text;

-- A worker holds the chunks it is embedding until then (another takes them up after).
ALTER TABLE ingest.chunks ADD COLUMN embed_lease_until timestamptz;
-- The source's vectors_version at which this chunk's vector was written (null without one).
ALTER TABLE ingest.chunks ADD COLUMN embedded_seq bigint;

-- What the workers look for: chunks without a vector.
CREATE INDEX chunks_unembedded_idx ON ingest.chunks (file_ord, position) WHERE embedding IS NULL;
-- What a replica catching up reads: vectors written since the version it holds.
CREATE INDEX chunks_embedded_seq_idx ON ingest.chunks (embedded_seq) WHERE embedded_seq IS NOT NULL;
