//! The path API: walks absolute paths one `Lookup` at a time from the root, as the Linux VFS does
//! before a file system sees a name, then runs the operation on (parent, last name).
//!
//! Paths are absolute, `/`-separated, without empty components (`//`, and a trailing `/` except the
//! root itself, are refused with [`PathError`]). `.` and `..` are resolved by the client on the
//! directories it walked (`..` of the root is the root); the service never sees them. A `.` or `..`
//! after a non-directory is ENOTDIR. As the last component of a path that names an entry to create,
//! remove or rename, they answer what Linux answers (mkdir `/a/.`: EEXIST; unlink: EISDIR; rmdir `.`:
//! EINVAL, `..`: ENOTEMPTY, `/`: EBUSY; rename: EBUSY). Symbolic links are not followed: one in the
//! middle of a path makes the next lookup fail with ENOTDIR.

use tessera_env::{Clock, Net, Rng, WallClock};

use crate::client::ClientError;
use crate::client::meta_client::MetaClient;
use crate::{Attr, Credentials, DirEntry, Errno, FileType, InodeId, MetaOp, MetaReply, READDIR_START};

/// Longest path the client resolves, in bytes (Linux `PATH_MAX` less its NUL).
pub const PATH_LEN_MAX_BYTES: usize = 4095;

/// Why a path is refused before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("not absolute")]
    NotAbsolute,
    #[error("empty component")]
    EmptyComponent,
    #[error("contains a NUL byte")]
    Nul,
    #[error("longer than {PATH_LEN_MAX_BYTES} bytes")]
    TooLong,
}

/// One component of a parsed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component<'a> {
    /// `.`
    Current,
    /// `..`
    Parent,
    /// Any other name (the service validates it).
    Name(&'a str),
}

/// The components of an absolute path (none for `/`).
pub fn parse_path(path: &str) -> Result<Vec<Component<'_>>, PathError> {
    if path.len() > PATH_LEN_MAX_BYTES {
        return Err(PathError::TooLong);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    let Some(rest) = path.strip_prefix('/') else { return Err(PathError::NotAbsolute) };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|c| match c {
            "" => Err(PathError::EmptyComponent),
            "." => Ok(Component::Current),
            ".." => Ok(Component::Parent),
            name => Ok(Component::Name(name)),
        })
        .collect()
}

/// A parsed path split into the walk to its parent and its last component (`None` for `/`).
fn split_last<'a>(path: &'a str) -> Result<(Vec<Component<'a>>, Option<Component<'a>>), ClientError> {
    let mut parts = parse_path(path).map_err(|reason| ClientError::InvalidPath { path: path.to_owned(), reason })?;
    let last = parts.pop();
    Ok((parts, last))
}

fn reply(result: Result<crate::MetaResult, ClientError>) -> Result<MetaReply, ClientError> {
    result?.map_err(ClientError::Posix)
}

fn unexpected(op: &'static str, got: MetaReply) -> ClientError {
    ClientError::UnexpectedReply { op, got: Box::new(got) }
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> MetaClient<C, W, N, R> {
    /// The inode `name` names in `parent`, and its type.
    pub async fn lookup(
        &mut self,
        parent: InodeId,
        name: &str,
        creds: &Credentials,
    ) -> Result<(InodeId, FileType), ClientError> {
        let op = MetaOp::Lookup { parent, name: name.to_owned(), creds: creds.clone() };
        match reply(self.execute(op).await)? {
            MetaReply::Child { ino, kind } => Ok((ino, kind)),
            got => Err(unexpected("lookup", got)),
        }
    }

    /// The inode `path` names.
    pub async fn resolve(&mut self, path: &str, creds: &Credentials) -> Result<InodeId, ClientError> {
        let parts = parse_path(path).map_err(|reason| ClientError::InvalidPath { path: path.to_owned(), reason })?;
        Ok(self.walk(&parts, creds).await?.0)
    }

    /// The attributes of the inode `path` names.
    pub async fn stat(&mut self, path: &str, creds: &Credentials) -> Result<Attr, ClientError> {
        let ino = self.resolve(path, creds).await?;
        self.getattr(ino).await
    }

    pub async fn getattr(&mut self, ino: InodeId) -> Result<Attr, ClientError> {
        match reply(self.execute(MetaOp::GetAttr { ino }).await)? {
            MetaReply::Attr(attr) => Ok(attr),
            got => Err(unexpected("getattr", got)),
        }
    }

    /// A new directory at `path` with permission bits `mode`; its attributes.
    pub async fn mkdir(&mut self, path: &str, mode: u32, creds: &Credentials) -> Result<Attr, ClientError> {
        let (parent, name) = self.parent_and_name(path, creds, Errno::EEXIST, Errno::EEXIST, Errno::EEXIST).await?;
        let op = MetaOp::Mkdir { parent, name, mode, creds: creds.clone() };
        self.entry("mkdir", op).await
    }

    /// A new regular file at `path` (exclusive: EEXIST if the name exists); its attributes.
    pub async fn create(&mut self, path: &str, mode: u32, creds: &Credentials) -> Result<Attr, ClientError> {
        let (parent, name) = self.parent_and_name(path, creds, Errno::EEXIST, Errno::EEXIST, Errno::EEXIST).await?;
        let op = MetaOp::Create { parent, name, mode, creds: creds.clone() };
        self.entry("create", op).await
    }

    /// Remove the non-directory at `path`.
    pub async fn unlink(&mut self, path: &str, creds: &Credentials) -> Result<(), ClientError> {
        let (parent, name) = self.parent_and_name(path, creds, Errno::EISDIR, Errno::EISDIR, Errno::EISDIR).await?;
        self.done("unlink", MetaOp::Unlink { parent, name, creds: creds.clone() }).await
    }

    /// Remove the empty directory at `path`.
    pub async fn rmdir(&mut self, path: &str, creds: &Credentials) -> Result<(), ClientError> {
        let (parent, name) = self.parent_and_name(path, creds, Errno::EBUSY, Errno::EINVAL, Errno::ENOTEMPTY).await?;
        self.done("rmdir", MetaOp::Rmdir { parent, name, creds: creds.clone() }).await
    }

    /// Move the entry at `from` to `to`, replacing what `to` names (`rename(2)`).
    pub async fn rename(&mut self, from: &str, to: &str, creds: &Credentials) -> Result<(), ClientError> {
        let (parent, name) = self.parent_and_name(from, creds, Errno::EBUSY, Errno::EBUSY, Errno::EBUSY).await?;
        let (new_parent, new_name) = self.parent_and_name(to, creds, Errno::EBUSY, Errno::EBUSY, Errno::EBUSY).await?;
        let op = MetaOp::Rename { parent, name, new_parent, new_name, creds: creds.clone() };
        self.done("rename", op).await
    }

    /// Every entry of directory `dir` (without `.` and `..`), in cookie order, following cookies page
    /// by page until the end. Not a snapshot: entries added or removed meanwhile may or may not appear.
    pub async fn readdir_all(&mut self, dir: InodeId, creds: &Credentials) -> Result<Vec<DirEntry>, ClientError> {
        let page = self.config().readdir_page_entries;
        let max = self.config().readdir_all_entries_max;
        let mut all: Vec<DirEntry> = Vec::new();
        let mut cookie = READDIR_START;
        loop {
            let op = MetaOp::Readdir { dir, cookie, max_entries: page, creds: creds.clone() };
            let (entries, eof) = match reply(self.execute(op).await)? {
                MetaReply::DirEntries { entries, eof } => (entries, eof),
                got => return Err(unexpected("readdir", got)),
            };
            if entries.len() > page as usize {
                return Err(ClientError::ReaddirStuck { cookie });
            }
            // Cookies strictly increase within and across pages (and are never READDIR_START);
            // anything else would loop or repeat entries.
            let mut last = cookie;
            for entry in &entries {
                if entry.cookie <= last {
                    return Err(ClientError::ReaddirStuck { cookie });
                }
                last = entry.cookie;
            }
            if all.len() + entries.len() > max {
                return Err(ClientError::TooManyEntries { max });
            }
            all.extend(entries);
            if eof {
                return Ok(all);
            }
            if last == cookie {
                return Err(ClientError::ReaddirStuck { cookie });
            }
            cookie = last;
        }
    }

    /// Walk `parts` from the root: the inode reached and its type.
    async fn walk(&mut self, parts: &[Component<'_>], creds: &Credentials) -> Result<(InodeId, FileType), ClientError> {
        let mut stack: Vec<(InodeId, FileType)> = vec![(self.root(), FileType::Directory)];
        for part in parts {
            let &(dir, kind) = stack.last().expect("the root stays on the stack");
            match part {
                Component::Current | Component::Parent if kind != FileType::Directory => {
                    return Err(ClientError::Posix(Errno::ENOTDIR));
                }
                Component::Current => {}
                Component::Parent => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                }
                Component::Name(name) => {
                    let child = self.lookup(dir, name, creds).await?;
                    stack.push(child);
                }
            }
        }
        Ok(*stack.last().expect("the root stays on the stack"))
    }

    /// The parent directory and last name of `path`, for an operation on that entry; a path ending in
    /// the root, `.` or `..` fails with the given errno once its parent resolved.
    async fn parent_and_name(
        &mut self,
        path: &str,
        creds: &Credentials,
        if_root: Errno,
        if_current: Errno,
        if_parent: Errno,
    ) -> Result<(InodeId, String), ClientError> {
        let (parent_parts, last) = split_last(path)?;
        let Some(last) = last else { return Err(ClientError::Posix(if_root)) };
        let (parent, kind) = self.walk(&parent_parts, creds).await?;
        match last {
            Component::Name(name) => Ok((parent, name.to_owned())),
            _ if kind != FileType::Directory => Err(ClientError::Posix(Errno::ENOTDIR)),
            Component::Current => Err(ClientError::Posix(if_current)),
            Component::Parent => Err(ClientError::Posix(if_parent)),
        }
    }

    async fn entry(&mut self, what: &'static str, op: MetaOp) -> Result<Attr, ClientError> {
        match reply(self.execute(op).await)? {
            MetaReply::Entry(attr) => Ok(attr),
            got => Err(unexpected(what, got)),
        }
    }

    async fn done(&mut self, what: &'static str, op: MetaOp) -> Result<(), ClientError> {
        match reply(self.execute(op).await)? {
            MetaReply::Done => Ok(()),
            got => Err(unexpected(what, got)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_components() {
        use Component::*;
        assert_eq!(parse_path("/"), Ok(vec![]));
        assert_eq!(parse_path("/a/./b/.."), Ok(vec![Name("a"), Current, Name("b"), Parent]));
        assert_eq!(parse_path("/..."), Ok(vec![Name("...")]));
        assert_eq!(parse_path("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(parse_path(""), Err(PathError::NotAbsolute));
        assert_eq!(parse_path("//a"), Err(PathError::EmptyComponent));
        assert_eq!(parse_path("/a/"), Err(PathError::EmptyComponent));
        assert_eq!(parse_path("/a\0b"), Err(PathError::Nul));
        let long = format!("/{}", "x".repeat(PATH_LEN_MAX_BYTES));
        assert_eq!(parse_path(&long), Err(PathError::TooLong));
        assert_eq!(parse_path(&long[..PATH_LEN_MAX_BYTES]).map(|p| p.len()), Ok(1));
    }
}
