//! The manifest: what a snapshot is (last included index and term, membership) and which
//! files it holds, with their sizes and CRC32C checksums.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft_core::{ConfState, LogIndex, NodeId, Term};

use crate::error::{Error, Result};
use crate::frame;
use crate::wire::{PbFile, PbManifest};

/// The name of the manifest file inside a snapshot directory (reserved: no snapshot file
/// may use it).
pub const MANIFEST_FILE: &str = "MANIFEST";

/// The most files one manifest may list.
pub const MAX_FILES: usize = 65_536;
/// The longest file name (relative path) a manifest may hold, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
const MAX_COMPONENT_LEN: usize = 255;
const FORMAT_VERSION: u32 = 1;
/// Manifests are small; this bounds reading one from disk.
const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// One file of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Relative path inside the snapshot directory, `/`-separated (see [`validate_name`]).
    pub name: String,
    /// Length in bytes.
    pub size: u64,
    /// CRC32C (Castagnoli) of the whole file.
    pub crc32c: u32,
}

/// A snapshot's description. Files are transferred in the order listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of that entry.
    pub term: Term,
    /// The membership at `index`.
    pub conf: ConfState,
    /// The files.
    pub files: Vec<FileMeta>,
}

impl Manifest {
    /// A manifest of the given files; checks the names and that none repeats.
    pub fn new(
        index: LogIndex,
        term: Term,
        conf: ConfState,
        files: Vec<FileMeta>,
    ) -> Result<Manifest> {
        let m = Manifest {
            index,
            term,
            conf,
            files,
        };
        m.validate()?;
        Ok(m)
    }

    /// Describes the files under `dir` (recursively, sorted by name), computing their sizes
    /// and checksums. Blocking: reads every byte; call it from `spawn_blocking` in async code.
    /// Symbolic links, special files and a file named [`MANIFEST_FILE`] at the top are
    /// refused.
    pub fn from_dir(
        dir: impl AsRef<Path>,
        index: LogIndex,
        term: Term,
        conf: ConfState,
    ) -> Result<Manifest> {
        let dir = dir.as_ref();
        let mut names = Vec::new();
        walk(dir, "", &mut names)?;
        if names.iter().any(|n| n == MANIFEST_FILE) {
            return Err(Error::InvalidName {
                name: MANIFEST_FILE.to_string(),
                reason: "reserved for the manifest",
            });
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let (size, crc32c) = checksum_file(&dir.join(&name))?;
            files.push(FileMeta { name, size, crc32c });
        }
        Manifest::new(index, term, conf, files)
    }

    /// The sum of the file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Checks every name ([`validate_name`]), that none repeats or is both a file and a
    /// directory, the file count and that the total size fits in a `u64`.
    pub fn validate(&self) -> Result<()> {
        if self.files.len() > MAX_FILES {
            return Err(Error::InvalidManifest(format!(
                "{} files (at most {MAX_FILES})",
                self.files.len()
            )));
        }
        let mut names = HashSet::with_capacity(self.files.len());
        let mut total: u64 = 0;
        for f in &self.files {
            validate_name(&f.name)?;
            if !names.insert(f.name.as_str()) {
                return Err(Error::InvalidManifest(format!("{:?} listed twice", f.name)));
            }
            total = total.checked_add(f.size).ok_or_else(|| {
                Error::InvalidManifest("total size overflows 64 bits".to_string())
            })?;
        }
        for f in &self.files {
            for (pos, _) in f.name.match_indices('/') {
                if names.contains(&f.name[..pos]) {
                    return Err(Error::InvalidManifest(format!(
                        "{:?} is a file and a directory",
                        &f.name[..pos]
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks that `dir` holds exactly these files (besides [`MANIFEST_FILE`]) with these
    /// sizes and checksums. Blocking: reads every byte.
    pub fn verify_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let mut present = Vec::new();
        walk(dir, "", &mut present)?;
        present.retain(|n| n != MANIFEST_FILE);
        let listed: HashSet<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        if let Some(extra) = present.iter().find(|n| !listed.contains(n.as_str())) {
            return Err(self.mismatch(extra, "present but not in the manifest".to_string()));
        }
        for f in &self.files {
            let path = dir.join(&f.name);
            if !path.is_file() {
                return Err(self.mismatch(&f.name, "missing".to_string()));
            }
            let (size, crc) = checksum_file(&path)?;
            if size != f.size {
                return Err(
                    self.mismatch(&f.name, format!("size {size}, manifest says {}", f.size))
                );
            }
            if crc != f.crc32c {
                return Err(self.mismatch(
                    &f.name,
                    format!("crc32c {crc:#010x}, manifest says {:#010x}", f.crc32c),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn mismatch(&self, file: &str, detail: String) -> Error {
        Error::Mismatch {
            index: self.index,
            term: self.term,
            file: file.to_string(),
            detail,
        }
    }

    pub(crate) fn to_pb(&self) -> PbManifest {
        PbManifest {
            version: FORMAT_VERSION,
            index: self.index.get(),
            term: self.term.get(),
            voters: self.conf.voters.iter().map(|v| v.get()).collect(),
            files: self
                .files
                .iter()
                .map(|f| PbFile {
                    name: f.name.clone(),
                    size: f.size,
                    crc32c: f.crc32c,
                })
                .collect(),
        }
    }

    /// Converts and validates a manifest from the wire or the disk.
    pub(crate) fn from_pb(pb: PbManifest) -> Result<Manifest> {
        if pb.version != FORMAT_VERSION {
            return Err(Error::InvalidManifest(format!(
                "format version {} (this version reads {FORMAT_VERSION})",
                pb.version
            )));
        }
        let files = pb
            .files
            .into_iter()
            .map(|f| FileMeta {
                name: f.name,
                size: f.size,
                crc32c: f.crc32c,
            })
            .collect();
        let conf = ConfState::new(pb.voters.into_iter().map(NodeId));
        Manifest::new(LogIndex(pb.index), Term(pb.term), conf, files)
    }

    /// The manifest file's bytes (a checksummed frame).
    pub(crate) fn encode_file(&self) -> Result<Bytes> {
        Ok(frame::encode(&self.to_pb(), MAX_MANIFEST_BYTES)?)
    }

    /// Reads a manifest file.
    pub(crate) fn read_file(path: &Path) -> Result<Manifest> {
        let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
        let corrupt = |detail: String| Error::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let body =
            frame::decode_exact(&bytes, MAX_MANIFEST_BYTES).map_err(|e| corrupt(e.to_string()))?;
        let pb =
            <PbManifest as prost::Message>::decode(body).map_err(|e| corrupt(e.to_string()))?;
        Manifest::from_pb(pb).map_err(|e| corrupt(e.to_string()))
    }
}

/// Checks that a file name from a manifest is a safe relative path: not empty, at most
/// [`MAX_NAME_LEN`] bytes, `/`-separated components that are neither empty, `.` nor `..`
/// (so no absolute path and no way out of the snapshot directory), no backslash or NUL, and
/// not [`MANIFEST_FILE`].
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.chars().take(MAX_NAME_LEN).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("too long");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    if name.contains(['\\', '\0']) {
        return bad("contains a backslash or NUL");
    }
    if name == MANIFEST_FILE {
        return bad("reserved for the manifest");
    }
    for c in name.split('/') {
        match c {
            "" => return bad("empty path component"),
            "." | ".." => return bad("'.' or '..' component"),
            c if c.len() > MAX_COMPONENT_LEN => return bad("path component too long"),
            _ => {}
        }
    }
    Ok(())
}

/// The path of a validated name under `dir`.
pub(crate) fn path_in(dir: &Path, name: &str) -> PathBuf {
    name.split('/').fold(dir.to_path_buf(), |p, c| p.join(c))
}

/// Collects the regular files under `dir` as relative `/`-separated names.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("read directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("read directory", dir))?;
        let path = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(Error::InvalidName {
                name: path.display().to_string(),
                reason: "not UTF-8",
            });
        };
        let name = format!("{prefix}{file_name}");
        let kind = entry.file_type().map_err(Error::io("stat", &path))?;
        if kind.is_dir() {
            walk(&path, &format!("{name}/"), out)?;
        } else if kind.is_file() {
            out.push(name);
        } else {
            return Err(Error::InvalidName {
                name,
                reason: "not a regular file or directory",
            });
        }
    }
    Ok(())
}

/// Size and CRC32C of a file.
pub(crate) fn checksum_file(path: &Path) -> Result<(u64, u32)> {
    let mut f = File::open(path).map_err(Error::io("open", path))?;
    checksum_prefix(&mut f, path, u64::MAX)
}

/// Size and CRC32C of the first `limit` bytes of `f` (fewer if it is shorter).
pub(crate) fn checksum_prefix(f: &mut File, path: &Path, limit: u64) -> Result<(u64, u32)> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut size, mut crc) = (0u64, 0u32);
    while size < limit {
        let want = buf
            .len()
            .min(usize::try_from(limit - size).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want]).map_err(Error::io("read", path))?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
    Ok((size, crc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> FileMeta {
        FileMeta {
            name: name.to_string(),
            size: 1,
            crc32c: 0,
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "sst/000001.sst", "a.b/c..d/.e", "x y"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../b",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            "MANIFEST",
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(validate_name(&"a".repeat(256)).is_err());
        validate_name("sub/MANIFEST").unwrap();
    }

    #[test]
    fn duplicates_and_file_directory_clashes() {
        let m = |names: &[&str]| {
            Manifest::new(
                LogIndex(1),
                Term(1),
                ConfState::default(),
                names.iter().map(|n| file(n)).collect(),
            )
        };
        m(&["a", "b/c", "b/d"]).unwrap();
        assert!(matches!(m(&["a", "a"]), Err(Error::InvalidManifest(_))));
        assert!(matches!(m(&["b", "b/c"]), Err(Error::InvalidManifest(_))));
        let mut big = file("a");
        big.size = u64::MAX;
        let mut big2 = file("b");
        big2.size = 1;
        assert!(
            Manifest::new(LogIndex(1), Term(1), ConfState::default(), vec![big, big2]).is_err()
        );
    }

    #[test]
    fn pb_round_trip_and_version() {
        let m = Manifest::new(
            LogIndex(7),
            Term(3),
            ConfState::new([NodeId(3), NodeId(1)]),
            vec![file("x"), file("d/y")],
        )
        .unwrap();
        assert_eq!(Manifest::from_pb(m.to_pb()).unwrap(), m);
        let mut pb = m.to_pb();
        pb.version = 2;
        assert!(matches!(
            Manifest::from_pb(pb),
            Err(Error::InvalidManifest(_))
        ));
        let mut pb = m.to_pb();
        pb.files[0].name = "../evil".into();
        assert!(matches!(
            Manifest::from_pb(pb),
            Err(Error::InvalidName { .. })
        ));
    }

    #[test]
    fn crc_combine_with_an_empty_prefix() {
        let data = b"hello snapshot";
        assert_eq!(crc32c::crc32c(b""), 0);
        assert_eq!(
            crate::crc::combine(0, crc32c::crc32c(data), data.len()),
            crc32c::crc32c(data)
        );
        let (a, b) = data.split_at(5);
        assert_eq!(
            crate::crc::combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len()),
            crc32c::crc32c(data)
        );
    }
}
