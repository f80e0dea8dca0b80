-- Skald's catalog, schema version 1: the state every node of a cluster
-- shares. Applied once, in one transaction, by the first skald that opens
-- the database (crates/store/src/catalog/postgres.rs); `skald_schema`
-- records the version. Never edit a released migration: add the next one.

-- Every segment ever published. A removed segment (replaced by a
-- compaction, expired, deleted) keeps its row, with `removed_at` set, so
-- every node's view learns of the removal; rows removed long ago are
-- purged.
CREATE TABLE skald_segments (
    tenant       text        NOT NULL,
    id           bigint      NOT NULL,
    -- Its key in the segment store (tenants/<tenant>/segments/<id>.seg).
    key          text        NOT NULL,
    -- Oldest and newest entry, ns since the epoch.
    min_ts       bigint      NOT NULL,
    max_ts       bigint      NOT NULL,
    bytes        bigint      NOT NULL,
    entries      bigint      NOT NULL,
    published_by text        NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    -- The catalog version of this row's last change (publish or removal):
    -- nodes ask for the rows changed since the version they have seen.
    change       bigint      NOT NULL,
    removed_at   timestamptz,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX skald_segments_change ON skald_segments (change);
CREATE INDEX skald_segments_listed ON skald_segments (tenant, id) WHERE removed_at IS NULL;

-- Segment ids, unique across nodes (they name objects).
CREATE SEQUENCE skald_segment_ids;
-- Catalog versions: taken only under the catalog's write lock, so they
-- commit in order.
CREATE SEQUENCE skald_changes;

-- Who compacts and applies retention to a tenant; a lease that expires
-- frees the tenant of a node that died.
CREATE TABLE skald_compaction_leases (
    tenant     text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Loki's delete requests (crates/server/src/delete.rs).
CREATE TABLE skald_delete_requests (
    tenant     text   NOT NULL,
    request_id text   NOT NULL,
    query      text   NOT NULL,
    start_ns   bigint NOT NULL,
    end_ns     bigint NOT NULL,
    created_ns bigint NOT NULL,
    PRIMARY KEY (tenant, request_id)
);

-- When a retention pass last started, whichever node ran it: one pass
-- per interval across the cluster.
CREATE TABLE skald_retention (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_pass_at timestamptz
);
INSERT INTO skald_retention (singleton, last_pass_at) VALUES (true, NULL);
