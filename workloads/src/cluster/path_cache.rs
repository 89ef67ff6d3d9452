//! A process's bounded cache of path -> (inode, type), the way a kernel's dentry cache remembers what
//! lookups found. Attributes are never cached: only the names' bindings, which the executor re-checks
//! by using them (a removed inode answers `ESTALE`).

use std::collections::BTreeMap;

use tessera_meta::{FileType, InodeId};

/// Path (relative to the run's root, no leading or trailing slash) -> the inode it named when last
/// looked up. Ordered, so that everything below a directory is one range.
#[derive(Clone, Debug)]
pub(super) struct PathCache {
    entries: BTreeMap<String, (InodeId, FileType)>,
    /// Entries kept at most: past this the cache starts over (memory stays bounded).
    entries_max: usize,
}

impl PathCache {
    pub(super) fn new(entries_max: usize) -> PathCache {
        assert!(entries_max > 0, "a path cache holds at least one entry");
        PathCache { entries: BTreeMap::new(), entries_max }
    }

    pub(super) fn get(&self, path: &str) -> Option<(InodeId, FileType)> {
        self.entries.get(path).copied()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remember that `path` names `entry`; a full cache is emptied first.
    pub(super) fn remember(&mut self, path: &str, entry: (InodeId, FileType)) {
        if self.entries.len() >= self.entries_max {
            self.entries.clear();
        }
        self.entries.insert(path.to_string(), entry);
        assert!(self.entries.len() <= self.entries_max);
    }

    /// Forget `path` and everything below it (after it was removed, or may have been).
    pub(super) fn forget_tree(&mut self, path: &str) {
        self.entries.remove(path);
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            self.entries.remove(&p);
        }
    }

    /// Forget `path`, what is below it and every directory above it (after a stale entry on the way:
    /// any of them may be the one that went stale).
    pub(super) fn forget_path(&mut self, path: &str) {
        self.forget_tree(path);
        let mut at = path;
        while let Some((parent, _)) = at.rsplit_once('/') {
            self.entries.remove(parent);
            at = parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: FileType = FileType::Directory;
    const FILE: FileType = FileType::Regular;

    fn cache_of(paths: &[&str]) -> PathCache {
        let mut cache = PathCache::new(64);
        for (i, path) in paths.iter().enumerate() {
            cache.remember(path, (InodeId(100 + i as u64), DIR));
        }
        cache
    }

    fn kept(cache: &PathCache) -> Vec<&str> {
        cache.entries.keys().map(String::as_str).collect()
    }

    #[test]
    fn forget_tree_drops_the_path_and_what_is_below_it_only() {
        let mut cache = cache_of(&["a", "a/b", "a/b/c", "a/b/c/d", "a/bc", "a/b.x", "a/c", "b"]);
        cache.forget_tree("a/b");
        // `a/bc` and `a/b.x` share the prefix `a/b` but are siblings, not children.
        assert_eq!(kept(&cache), ["a", "a/b.x", "a/bc", "a/c", "b"]);
    }

    #[test]
    fn forget_path_also_drops_every_directory_above() {
        let mut cache = cache_of(&["a", "a/b", "a/b/c", "a/b/c/d", "a/x", "ab", "b"]);
        cache.forget_path("a/b/c");
        assert_eq!(kept(&cache), ["a/x", "ab", "b"]);
        // A top-level path has no directory above it but the root, which is never cached.
        cache.forget_path("b");
        assert_eq!(kept(&cache), ["a/x", "ab"]);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let mut cache = PathCache::new(3);
        cache.remember("a", (InodeId(2), DIR));
        cache.remember("a/f", (InodeId(3), FILE));
        cache.remember("a", (InodeId(4), DIR));
        assert_eq!(cache.len(), 2, "remembering a known path again replaces it");
        cache.remember("b", (InodeId(5), DIR));
        assert_eq!(cache.len(), 3);
        cache.remember("c", (InodeId(6), FILE));
        assert_eq!(kept(&cache), ["c"]);
        assert_eq!(cache.get("c"), Some((InodeId(6), FILE)));
        assert_eq!(cache.get("a"), None);
    }
}
