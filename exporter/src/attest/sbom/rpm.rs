//! rpm's sqlite database (`/var/lib/rpm/rpmdb.sqlite`, or
//! `/usr/lib/sysimage/rpm/rpmdb.sqlite` on newer Fedora): each row of
//! `Packages` is an rpm header blob, read with every offset checked.

use super::{purl_escape, Distro, ImageFiles, Package, MAX_DB};
use crate::attest::AttestError;

/// Where rpm keeps its database, newest layout first.
const PATHS: &[&str] = &[
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "var/lib/rpm/rpmdb.sqlite",
];
/// At most this many rows are read.
const MAX_ROWS: usize = 100_000;
/// At most this many index entries in one header.
const MAX_ENTRIES: usize = 65_536;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_VENDOR: u32 = 1011;
const TAG_LICENSE: u32 = 1014;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// The packages of rpm's sqlite database, when the image has one.
pub(super) fn packages(
    files: &mut ImageFiles<'_>,
    distro: &Distro,
) -> Result<Vec<Package>, AttestError> {
    for rel in PATHS {
        let Some(bytes) = files.read_bytes(rel, MAX_DB)? else {
            continue;
        };
        let wal = files.read_bytes(&format!("{rel}-wal"), MAX_DB)?;
        let fail = |message: String| AttestError::Read {
            path: rel.to_string(),
            message,
        };
        // sqlite reads a path: a private copy, so nothing is written
        // beside the image's layers.
        let dir = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
        let db = dir.path().join("rpmdb.sqlite");
        std::fs::write(&db, &bytes).map_err(|e| fail(e.to_string()))?;
        if let Some(wal) = wal {
            std::fs::write(dir.path().join("rpmdb.sqlite-wal"), wal)
                .map_err(|e| fail(e.to_string()))?;
        }
        let blobs = read_blobs(&db).map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        for blob in blobs {
            match header(&blob) {
                Some(h) => out.extend(package(h, distro, rel)),
                None => files
                    .warnings
                    .push(format!("sbom: /{rel}: a header does not parse; skipped")),
            }
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

fn read_blobs(db: &std::path::Path) -> rusqlite::Result<Vec<Vec<u8>>> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn.prepare("SELECT blob FROM Packages")?;
    let rows = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
    rows.take(MAX_ROWS).collect()
}

/// The tags of one header that kiln reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Header {
    name: Option<String>,
    version: Option<String>,
    release: Option<String>,
    epoch: Option<u32>,
    vendor: Option<String>,
    license: Option<String>,
    arch: Option<String>,
    source_rpm: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses a header blob: `il` and `dl` (big-endian), `il` entries of
/// (tag, type, offset, count), then `dl` bytes of data. `None` when it is
/// not one.
fn header(blob: &[u8]) -> Option<Header> {
    let il = be32(blob, 0)? as usize;
    let dl = be32(blob, 4)? as usize;
    if il > MAX_ENTRIES {
        return None;
    }
    let data_start = 8usize.checked_add(il.checked_mul(16)?)?;
    let data = blob.get(data_start..data_start.checked_add(dl)?)?;
    let mut h = Header::default();
    for i in 0..il {
        let at = 8 + i * 16;
        let (tag, kind, offset) = (
            be32(blob, at)?,
            be32(blob, at + 4)?,
            be32(blob, at + 8)? as usize,
        );
        let string = || -> Option<String> {
            if !matches!(kind, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
                return None;
            }
            let rest = data.get(offset..)?;
            let end = rest.iter().position(|&c| c == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        match tag {
            TAG_NAME => h.name = string(),
            TAG_VERSION => h.version = string(),
            TAG_RELEASE => h.release = string(),
            TAG_EPOCH if kind == TYPE_INT32 => h.epoch = be32(data, offset),
            TAG_VENDOR => h.vendor = string(),
            TAG_LICENSE => h.license = string(),
            TAG_ARCH => h.arch = string(),
            TAG_SOURCERPM => h.source_rpm = string(),
            _ => {}
        }
    }
    Some(h)
}

fn package(h: Header, distro: &Distro, rel: &str) -> Option<Package> {
    let name = h.name?;
    let version = h.version?;
    let full = match &h.release {
        Some(r) => format!("{version}-{r}"),
        None => version.clone(),
    };
    let namespace = if distro.id.is_empty() {
        "redhat"
    } else {
        distro.id.as_str()
    };
    let mut qualifiers = Vec::new();
    if let Some(arch) = &h.arch {
        qualifiers.push(format!("arch={}", purl_escape(arch)));
    }
    if let Some(epoch) = h.epoch.filter(|e| *e > 0) {
        qualifiers.push(format!("epoch={epoch}"));
    }
    if let Some(src) = &h.source_rpm {
        qualifiers.push(format!("upstream={}", purl_escape(src)));
    }
    let d = distro.purl_qualifier();
    if !d.is_empty() {
        qualifiers.push(d[1..].to_string());
    }
    let mut purl = format!(
        "pkg:rpm/{}/{}@{}",
        purl_escape(namespace),
        purl_escape(&name),
        purl_escape(&full)
    );
    if !qualifiers.is_empty() {
        purl.push('?');
        purl.push_str(&qualifiers.join("&"));
    }
    let version_info = match h.epoch.filter(|e| *e > 0) {
        Some(e) => format!("{e}:{full}"),
        None => full,
    };
    Some(Package {
        name,
        version: version_info,
        purl,
        license: h.license.as_deref().and_then(super::spdx::valid_expression),
        supplier: h.vendor.map(|v| format!("Organization: {v}")),
        source_file: format!("/{rel}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob with these (tag, type, data) entries.
    fn blob(entries: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index: Vec<u8> = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for (tag, kind, bytes) in entries {
            index.extend(tag.to_be_bytes());
            index.extend(kind.to_be_bytes());
            index.extend((data.len() as u32).to_be_bytes());
            index.extend(1u32.to_be_bytes());
            data.extend(bytes);
        }
        let mut out = Vec::new();
        out.extend((entries.len() as u32).to_be_bytes());
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn s(v: &str) -> Vec<u8> {
        let mut b = v.as_bytes().to_vec();
        b.push(0);
        b
    }

    #[test]
    fn reads_a_header_and_refuses_bad_offsets() {
        let b = blob(&[
            (TAG_NAME, TYPE_STRING, s("bash")),
            (TAG_VERSION, TYPE_STRING, s("5.2.26")),
            (TAG_RELEASE, TYPE_STRING, s("3.fc40")),
            (TAG_EPOCH, TYPE_INT32, 1u32.to_be_bytes().to_vec()),
            (TAG_ARCH, TYPE_STRING, s("x86_64")),
            (TAG_LICENSE, TYPE_STRING, s("GPL-3.0-or-later")),
            (TAG_SOURCERPM, TYPE_STRING, s("bash-5.2.26-3.fc40.src.rpm")),
        ]);
        let h = header(&b).expect("header");
        let distro = Distro {
            id: "fedora".into(),
            version: "40".into(),
        };
        let p = package(h, &distro, "var/lib/rpm/rpmdb.sqlite").expect("package");
        assert_eq!(p.version, "1:5.2.26-3.fc40");
        assert_eq!(
            p.purl,
            "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&epoch=1&upstream=bash-5.2.26-3.fc40.src.rpm&distro=fedora-40"
        );
        assert_eq!(p.license.as_deref(), Some("GPL-3.0-or-later"));
        // Truncated, or an index larger than the blob: not a header.
        assert!(header(&b[..b.len() - 3]).is_none());
        let mut huge = b.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(header(&huge).is_none());
        // An offset past the data leaves the tag out, nothing more.
        let mut off = b.clone();
        off[16..20].copy_from_slice(&10_000u32.to_be_bytes());
        assert_eq!(header(&off).expect("header").name, None);
    }
}
