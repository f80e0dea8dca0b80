//! A segment as the store uses it: an open [`skald_chunk::SegmentReader`]
//! plus a map from stream to its place in the file. The one module that
//! touches the segment format's API.

use skald_chunk::{ChunkMeta, SegmentReader};
use skald_model::{Entry, LabelSet, StreamId, Timestamp};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    reader: SegmentReader,
    by_stream: HashMap<StreamId, usize>,
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    pub disk_bytes: u64,
}

impl Segment {
    pub fn open(id: u64, path: &Path) -> Result<Segment, skald_chunk::ChunkError> {
        let reader = SegmentReader::open(path)?;
        let mut by_stream = HashMap::new();
        let mut min_ts = Timestamp::MAX;
        let mut max_ts = Timestamp::MIN;
        for (i, s) in reader.streams().iter().enumerate() {
            by_stream.insert(s.id, i);
            for c in &s.chunks {
                min_ts = min_ts.min(c.min_ts);
                max_ts = max_ts.max(c.max_ts);
            }
        }
        let disk_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(Segment {
            id,
            path: path.to_path_buf(),
            reader,
            by_stream,
            min_ts,
            max_ts,
            disk_bytes,
        })
    }

    /// Totals recorded in the segment's footer.
    pub fn summary(&self) -> &skald_chunk::SegmentSummary {
        self.reader.summary()
    }

    /// Every stream: labels, id, and its time bounds in this segment.
    pub fn streams(&self) -> impl Iterator<Item = (&LabelSet, StreamId, Timestamp, Timestamp)> {
        self.reader.streams().iter().map(|s| {
            let min = s
                .chunks
                .iter()
                .map(|c| c.min_ts)
                .min()
                .unwrap_or(Timestamp::MAX);
            let max = s
                .chunks
                .iter()
                .map(|c| c.max_ts)
                .max()
                .unwrap_or(Timestamp::MIN);
            (&s.labels, s.id, min, max)
        })
    }

    /// The chunks of `stream` overlapping `[start, end)`, as indexes.
    pub fn chunks_of(
        &self,
        stream: StreamId,
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<(usize, usize)> {
        let Some(&pos) = self.by_stream.get(&stream) else {
            return Vec::new();
        };
        self.reader.streams()[pos]
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.min_ts < end && c.max_ts >= start)
            .map(|(i, _)| (pos, i))
            .collect()
    }

    pub fn chunk(&self, at: (usize, usize)) -> &ChunkMeta {
        &self.reader.streams()[at.0].chunks[at.1]
    }

    pub fn read_chunk(&self, at: (usize, usize)) -> Result<Vec<Entry>, skald_chunk::ChunkError> {
        self.reader.read_block(self.chunk(at))
    }

    /// The chunk decoded into one buffer that lends out its lines: for
    /// scans that need no owned entries.
    pub fn read_decoded(
        &self,
        at: (usize, usize),
    ) -> Result<skald_chunk::DecodedBlock, skald_chunk::ChunkError> {
        self.reader.read_decoded(self.chunk(at))
    }

    /// Whether the chunk may contain `needle` (a substring of some line,
    /// compared ASCII-case-insensitively); `false` is certain.
    pub fn may_contain(&self, at: (usize, usize), needle: &[u8]) -> bool {
        self.reader.may_contain(self.chunk(at), needle)
    }

    /// [`Segment::may_contain`] with a probe prepared once per query.
    pub fn may_match(&self, at: (usize, usize), probe: &skald_chunk::FilterProbe) -> bool {
        self.reader.may_match(self.chunk(at), probe)
    }
}
