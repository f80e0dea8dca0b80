-- Schema version 3: API tokens in the catalog, so every node of a cluster
-- authenticates against the same list (`skald token create --catalog
-- postgres://...`; crates/server/src/service/auth.rs). A row holds what a
-- data directory's tokens.json holds per token: never the token itself,
-- only its salt and salted hash inside `record` (JSON text).
CREATE TABLE skald_tokens (
    id         text        PRIMARY KEY,
    -- Names are unique: tokens are listed and revoked by name.
    name       text        NOT NULL UNIQUE,
    record     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
