//! [`MemorySegments`]: segments as bytes in a map, for tests of everything
//! above the seam (nothing here survives the process).

use super::{Listed, SegmentStore, not_found};
use parking_lot::RwLock;
use skald_chunk::RangeRead;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct MemorySegments {
    objects: RwLock<BTreeMap<String, Arc<[u8]>>>,
}

impl MemorySegments {
    pub fn new() -> MemorySegments {
        MemorySegments::default()
    }
}

impl SegmentStore for MemorySegments {
    fn readable_after_delete(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }

    fn location(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("memory:{key}"))
    }

    fn put_file(&self, key: &str, local: &Path) -> io::Result<()> {
        let bytes = std::fs::read(local)?;
        self.put_bytes(key, &bytes)
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.objects.write().insert(key.to_string(), bytes.into());
        Ok(())
    }

    fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        self.objects
            .read()
            .get(key)
            .map(|b| b.to_vec())
            .ok_or_else(|| not_found(key))
    }

    fn open(&self, key: &str) -> io::Result<Box<dyn RangeRead>> {
        let bytes = self.objects.read().get(key).cloned();
        Ok(Box::new(bytes.ok_or_else(|| not_found(key))?))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<Listed>> {
        Ok(self
            .objects
            .read()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Listed {
                key: k.clone(),
                size: (**v).len() as u64,
            })
            .collect())
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        self.objects.write().remove(key);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut objects = self.objects.write();
        let bytes = objects.remove(from).ok_or_else(|| not_found(from))?;
        objects.insert(to.to_string(), bytes);
        Ok(())
    }
}
