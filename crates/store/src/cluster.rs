//! Several nodes over one shared catalog: the entries other nodes hold in
//! memory.
//!
//! An ingest node keeps its WAL and head on its own disk and flushes
//! segments into the shared segment store and catalog; until a flush, its
//! newest entries exist only in its head. A node that answers queries
//! installs [`PeerHeads`] (the server's client for the ingest nodes'
//! internal endpoint) with [`crate::Store::set_peers`]; each snapshot then
//!
//! 1. asks every ingest node for its head entries matching the query
//!    ([`crate::Store::head_streams`] on their side),
//! 2. brings the view of the catalog up to date,
//! 3. takes the local snapshot and adds the peers' entries as head blocks.
//!
//! The order makes a flush invisible to readers: an ingest node lists a
//! segment in the catalog before it drops the flushed head, so an entry
//! missing from the head an ingest node returned in (1) was listed before
//! (1) answered, and is in the view after (2). An entry in both (a head
//! still flushing and its segment) is an exact duplicate, dropped when
//! read. A peer that does not answer is reported in the snapshot's
//! `corrupt` list, which every query response carries as a warning, as
//! Loki's partial responses do: its entries not yet flushed are missing
//! from that answer.
//!
//! Label names, values and series on a query node include the streams of
//! the ingest nodes' heads too (without warnings: those answers have no
//! place for them).
//!
//! Not here: the HTTP client and the endpoint (`skald-server`, `skald`),
//! node registration (the catalog's `skald_nodes`).

use crate::catalog::CorruptFile;
use crate::head::HeadBlock;
use crate::tail::TailFeed;
use crate::{Snapshot, Source, StreamSources};
use skald_model::{Entry, LabelSet, Matcher, TenantId, Timestamp};
use std::sync::Arc;

/// What the ingest nodes answered for one query.
#[derive(Debug, Default)]
pub struct PeerAnswer {
    /// Every matching stream of every node's head, entries in `[start,
    /// end)`.
    pub streams: Vec<(LabelSet, Vec<Entry>)>,
    /// (node address, why) for each node that did not answer.
    pub unreachable: Vec<(String, String)>,
}

/// The other nodes' heads, as a query node reaches them.
pub trait PeerHeads: Send + Sync {
    /// The head entries of `tenant`'s streams matching `matchers` in
    /// `[start, end)` on every live ingest node but this one. Blocks.
    fn fetch(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> PeerAnswer;

    /// As [`PeerHeads::fetch`], for index answers (labels, series): each
    /// stream with at least its oldest and newest entry in the range.
    fn streams(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> PeerAnswer {
        self.fetch(tenant, matchers, start, end)
    }

    /// Live tail: forwards what every live ingest node but this one makes
    /// durable for `tenant`'s streams matching `matchers` into `feed`, from
    /// now until the feed's subscription is dropped (nodes that join
    /// later included), and calls [`TailFeed::ready`] once each node was
    /// reached or tried. Returns at once. Nothing by default.
    fn follow(&self, _tenant: &TenantId, _matchers: &[Matcher], feed: TailFeed) {
        feed.ready();
    }
}

/// The streams of a peers' answer as the index describes them.
pub(crate) fn stream_infos(answer: PeerAnswer) -> Vec<crate::StreamInfo> {
    answer
        .streams
        .into_iter()
        .filter_map(|(labels, entries)| {
            let min_ts = entries.iter().map(|e| e.ts).min()?;
            let max_ts = entries.iter().map(|e| e.ts).max()?;
            Some(crate::StreamInfo {
                id: labels.stream_id(),
                labels,
                min_ts,
                max_ts,
            })
        })
        .collect()
}

/// Adds the peers' entries to `snap` as head blocks, and their failures as
/// unreadable sources.
pub(crate) fn merge(snap: &mut Snapshot, answer: PeerAnswer) {
    for (address, why) in answer.unreachable {
        snap.corrupt.push(CorruptFile {
            path: format!("ingest node {address}").into(),
            error: format!("{why}; entries it has not flushed yet are missing from this answer"),
        });
    }
    for (labels, mut entries) in answer.streams {
        if entries.is_empty() {
            continue;
        }
        entries.sort_by_key(|e| e.ts);
        let mut block = HeadBlock::new();
        for e in &entries {
            block.push(e);
        }
        let source = Source::Head(Arc::new(block.freeze()));
        let id = labels.stream_id();
        match snap.streams.iter_mut().find(|s| s.id == id) {
            Some(s) => s.sources.push(source),
            None => snap.streams.push(StreamSources {
                labels,
                id,
                sources: vec![source],
            }),
        }
    }
}
