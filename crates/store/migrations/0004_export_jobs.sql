-- Schema version 4: export job records in the catalog, so that a job
-- started on one node (gRPC ExportLogs with a destination) is found by
-- GetExportStatus on any node (crates/server/src/export.rs). The export
-- file itself stays on the disk of the node that wrote it, which `record`
-- names.
CREATE TABLE skald_export_jobs (
    tenant     text        NOT NULL,
    id         text        NOT NULL,
    record     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id)
);
