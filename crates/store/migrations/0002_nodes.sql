-- Schema version 2: the nodes of a cluster. Ingest nodes register here
-- with a heartbeat, so query nodes know whose heads to ask
-- (crates/store/src/cluster.rs). A node that stops cleanly (its head
-- flushed) removes its row; one that died keeps it, and queries say that
-- its unflushed entries are missing until it is back.
CREATE TABLE skald_nodes (
    -- The base URL other nodes reach its HTTP API at; a node restarted at
    -- the same address takes its row back.
    address      text        PRIMARY KEY,
    -- all, ingest, query or compact.
    target       text        NOT NULL,
    node         text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
