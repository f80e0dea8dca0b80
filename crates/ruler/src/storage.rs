//! Rule files on disk, in Loki's local layout:
//! `<rules_dir>/<tenant>/<namespace>.yaml`, one rule file (`groups:`) per
//! namespace. Files are replaced atomically (temporary file, fsync,
//! rename, directory fsync), so a reader or a crash sees the old file or
//! the new one, never a mix. Nothing here validates rules: callers check
//! a group before they store it.

use crate::RulerError;
use crate::rules::{RuleFile, RuleGroup};
use skald_model::TenantId;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const EXT: &str = "yaml";

/// Writes `bytes` to `path` so that it is either the old or the new
/// content, durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// A namespace name usable as a file name: not empty, no `/` or NUL,
/// not starting with `.`, at most 200 bytes.
pub fn check_namespace(ns: &str) -> Result<(), RulerError> {
    let bad = |why: &str| RulerError::BadRequest(format!("invalid namespace {ns:?}: {why}"));
    if ns.is_empty() {
        return Err(bad("empty"));
    }
    if ns.len() > 200 {
        return Err(bad("longer than 200 bytes"));
    }
    if ns.starts_with('.') {
        return Err(bad("must not start with '.'"));
    }
    if ns.contains(['/', '\\', '\0']) {
        return Err(bad("must not contain '/', '\\' or NUL"));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct RuleStore {
    dir: PathBuf,
}

impl RuleStore {
    pub fn new(dir: PathBuf) -> RuleStore {
        RuleStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, tenant: &TenantId, ns: &str) -> PathBuf {
        self.dir.join(tenant.as_str()).join(format!("{ns}.{EXT}"))
    }

    /// Tenants that have a rules directory.
    pub fn tenants(&self) -> Result<Vec<TenantId>, RulerError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RulerError::io(&self.dir, e)),
        };
        for e in entries {
            let e = e.map_err(|e| RulerError::io(&self.dir, e))?;
            if !e.path().is_dir() {
                continue;
            }
            if let Some(t) = e.file_name().to_str().and_then(|n| TenantId::new(n).ok()) {
                out.push(t);
            }
        }
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(out)
    }

    /// Every namespace file of a tenant: its name and its parsed content,
    /// or why it could not be read.
    pub fn load_tenant(
        &self,
        tenant: &TenantId,
    ) -> Result<BTreeMap<String, Result<RuleFile, String>>, RulerError> {
        let dir = self.dir.join(tenant.as_str());
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RulerError::io(&dir, e)),
        };
        for e in entries {
            let e = e.map_err(|e| RulerError::io(&dir, e))?;
            let path = e.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(ns) = name
                .strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"))
            else {
                continue;
            };
            if ns.starts_with('.') {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|text| {
                    RuleFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
                });
            out.insert(ns.to_string(), parsed);
        }
        Ok(out)
    }

    /// The groups of one namespace (`None`: no such namespace).
    pub fn namespace(&self, tenant: &TenantId, ns: &str) -> Result<Option<RuleFile>, RulerError> {
        check_namespace(ns)?;
        let path = self.path(tenant, ns);
        match std::fs::read_to_string(&path) {
            Ok(text) => RuleFile::parse(&text)
                .map(Some)
                .map_err(|e| RulerError::Corrupt(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RulerError::io(&path, e)),
        }
    }

    /// Adds a group to a namespace, or replaces the group of that name.
    pub fn put_group(
        &self,
        tenant: &TenantId,
        ns: &str,
        group: RuleGroup,
    ) -> Result<(), RulerError> {
        let mut file = self.namespace(tenant, ns)?.unwrap_or_default();
        file.namespace = None;
        match file.groups.iter_mut().find(|g| g.name == group.name) {
            Some(slot) => *slot = group,
            None => file.groups.push(group),
        }
        self.write(tenant, ns, &file)
    }

    /// Removes a group; `false` when it did not exist. The namespace file
    /// goes with its last group.
    pub fn delete_group(
        &self,
        tenant: &TenantId,
        ns: &str,
        name: &str,
    ) -> Result<bool, RulerError> {
        let Some(mut file) = self.namespace(tenant, ns)? else {
            return Ok(false);
        };
        let before = file.groups.len();
        file.groups.retain(|g| g.name != name);
        if file.groups.len() == before {
            return Ok(false);
        }
        if file.groups.is_empty() {
            self.delete_namespace(tenant, ns)?;
            return Ok(true);
        }
        self.write(tenant, ns, &file)?;
        Ok(true)
    }

    /// Removes a namespace; `false` when it did not exist.
    pub fn delete_namespace(&self, tenant: &TenantId, ns: &str) -> Result<bool, RulerError> {
        check_namespace(ns)?;
        let path = self.path(tenant, ns);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RulerError::io(&path, e)),
        }
    }

    fn write(&self, tenant: &TenantId, ns: &str, file: &RuleFile) -> Result<(), RulerError> {
        let path = self.path(tenant, ns);
        write_atomic(&path, file.to_yaml().as_bytes()).map_err(|e| RulerError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, expr: &str) -> RuleGroup {
        RuleGroup::parse(&format!(
            "name: {name}\nrules:\n  - alert: A\n    expr: '{expr}'\n"
        ))
        .unwrap()
    }

    #[test]
    fn groups_are_added_replaced_and_deleted_in_loki_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = RuleStore::new(dir.path().to_path_buf());
        let t = TenantId::new("team-a").unwrap();
        s.put_group(&t, "ns1", group("g1", "vector(1)")).unwrap();
        s.put_group(&t, "ns1", group("g2", "vector(2)")).unwrap();
        s.put_group(&t, "ns1", group("g1", "vector(3)")).unwrap();
        assert!(dir.path().join("team-a/ns1.yaml").is_file());
        let f = s.namespace(&t, "ns1").unwrap().unwrap();
        let exprs: Vec<_> = f.groups.iter().map(|g| g.rules[0].expr.as_str()).collect();
        assert_eq!(exprs, ["vector(3)", "vector(2)"]);
        assert_eq!(s.tenants().unwrap(), vec![t.clone()]);
        assert!(s.delete_group(&t, "ns1", "g1").unwrap());
        assert!(!s.delete_group(&t, "ns1", "g1").unwrap());
        assert!(s.delete_group(&t, "ns1", "g2").unwrap());
        assert!(
            s.namespace(&t, "ns1").unwrap().is_none(),
            "last group takes the file"
        );
        assert!(!s.delete_namespace(&t, "ns1").unwrap());
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(s.namespace(&t, bad).is_err(), "{bad}");
        }
    }
}
