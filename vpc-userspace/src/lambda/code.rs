//! A function's code, as Lambda takes it: inline text (a template's
//! `Code.ZipFile`, which CloudFormation writes to `index.py` / `index.js`)
//! or a deployment package, a zip archive whose files are laid out under
//! the task root exactly as in the archive (`app.handler` is `app.py`,
//! `src/index.handler` is `src/index.js`, executable bits kept).
//!
//! Packages come from CreateFunction's and UpdateFunctionCode's `ZipFile`,
//! from a template's `Code` given as a local directory or zip, and from a
//! synthesized CDK app's assets ([`crate::model`] resolves the last two).
//! Each is checked as Lambda checks it (it unzips, within 250 MB), and
//! known by what Lambda reports: `CodeSha256`, the base64 of the SHA-256
//! of the zip, and `CodeSize`, its bytes. A directory is zipped
//! deterministically first (files only, sorted, 1980-01-01 times, modes
//! 0644 or 0755), so the same files always give the same hash.
//!
//! The deployment keeps each package once, content-addressed:
//! `/run/vpc/<name>/code/<hex sha256>.zip`, written under the deployment's
//! lock together with the desired model that refers to it, and removed
//! ([`gc`]) once no function or published version refers to it.
use std::{
    collections::HashSet,
    io::{Cursor, Read, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{
    lambda::lifecycle::ApiError,
    model::{Function, Model, Runtime},
};

/// The largest CreateFunction / UpdateFunctionCode request Lambda takes:
/// a 50 MB zip, base64.
pub const MAX_REQUEST_BYTES: usize = 69_905_067;
/// The largest a package may be unzipped (250 MB).
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;
/// Lambda's answer to a `ZipFile` that is not a zip archive.
pub const NOT_A_ZIP: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

/// Lambda's answer to a package over [`MAX_UNZIPPED_BYTES`].
pub fn too_large_unzipped() -> String {
    format!("Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
}

/// A deployment package: what the model and the store record of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    /// `CodeSha256`: the base64 of the SHA-256 of the zip.
    pub sha256: String,
    /// `CodeSize`: the zip's bytes.
    pub size: u64,
    /// The zip itself, until it is in the deployment's store (a model just
    /// built from a template, a request's `ZipFile`).
    #[serde(skip)]
    pub zip: Option<Arc<Vec<u8>>>,
}

/// Two packages are the same when their zips are (the bytes in hand or
/// not).
impl PartialEq for Package {
    fn eq(&self, o: &Self) -> bool {
        self.sha256 == o.sha256 && self.size == o.size
    }
}

impl Package {
    /// A zip archive as a package, if Lambda would take it.
    pub fn from_zip(zip: Vec<u8>) -> Result<Package, String> {
        check_zip(&zip, MAX_UNZIPPED_BYTES)?;
        Ok(Self::of(zip))
    }

    /// A directory's files, zipped deterministically.
    pub fn from_dir(dir: &Path) -> Result<Package, String> {
        Ok(Self::of(zip_dir(dir, MAX_UNZIPPED_BYTES)?))
    }

    /// A file: a zip archive (by its signature or its name) as it is, any
    /// other file zipped alone, as `aws cloudformation package` does with
    /// a function's `Code`.
    pub fn from_file(path: &Path) -> Result<Package, String> {
        use std::os::unix::fs::PermissionsExt as _;
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if is_zip(&data)
            || path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
        {
            return Self::from_zip(data);
        }
        if data.len() as u64 > MAX_UNZIPPED_BYTES {
            return Err(too_large_unzipped());
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: a file name that is not UTF-8", path.display()))?
            .to_string();
        let exec = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
        let mode = if exec { 0o755 } else { 0o644 };
        Ok(Self::of(write_zip(&vec![(name, data, mode)])))
    }

    fn of(zip: Vec<u8>) -> Package {
        Package {
            sha256: sha256_b64(&zip),
            size: zip.len() as u64,
            zip: Some(Arc::new(zip)),
        }
    }

    /// The SHA-256 in hex: the package's name in the store.
    pub fn hex(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .decode(&self.sha256)
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Its file in deployment `name`'s store.
    pub fn path(&self, name: &str) -> PathBuf {
        store_dir(name).join(format!("{}.zip", self.hex()))
    }
}

/// Do `bytes` begin as a zip archive (a local file header, or the end of
/// an empty archive)?
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Base64 of the SHA-256 of `bytes`, as Lambda's `CodeSha256`.
pub fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// Does `zip` unzip, within `limit` bytes? Every entry is read (so its
/// CRC is checked) and counted as it unzips, whatever its header claims.
pub fn check_zip(zip: &[u8], limit: u64) -> Result<(), String> {
    let mut a = zip::ZipArchive::new(Cursor::new(zip)).map_err(|_| NOT_A_ZIP.to_string())?;
    let declared: u64 = (0..a.len())
        .filter_map(|i| a.by_index_raw(i).ok().map(|f| f.size()))
        .sum();
    if declared > limit {
        return Err(too_large_unzipped());
    }
    let mut total = 0u64;
    for i in 0..a.len() {
        let mut f = a.by_index(i).map_err(|_| NOT_A_ZIP.to_string())?;
        // A name that would leave the task root.
        if f.enclosed_name().is_none() {
            return Err(NOT_A_ZIP.into());
        }
        let mut left = limit - total + 1;
        let n = std::io::copy(&mut (&mut f).take(left), &mut std::io::sink())
            .map_err(|_| NOT_A_ZIP.to_string())?;
        left -= n;
        total += n;
        if left == 0 || total > limit {
            return Err(too_large_unzipped());
        }
    }
    Ok(())
}

/// Entries of a package: name (`/`-separated), bytes, mode.
type Entries = Vec<(String, Vec<u8>, u32)>;

/// Writes `entries` as a zip, deterministically: in the order given,
/// deflated, every time 1980-01-01 00:00.
fn write_zip(entries: &Entries) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(vec![]));
    for (name, data, mode) in entries {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(*mode);
        w.start_file(name.as_str(), opts).expect("zip in memory");
        w.write_all(data).expect("zip in memory");
    }
    w.finish().expect("zip in memory").into_inner()
}

/// The files under `dir` (symbolic links followed), as a zip: names
/// relative to `dir`, sorted; mode 0755 for a file anyone may execute,
/// else 0644; at most `limit` bytes in all.
pub fn zip_dir(dir: &Path, limit: u64) -> Result<Vec<u8>, String> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut Entries,
        total: &mut u64,
        limit: u64,
    ) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for p in names {
            let meta = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            if meta.is_dir() {
                walk(root, &p, out, total, limit)?;
            } else if meta.is_file() {
                *total += meta.len();
                if *total > limit {
                    return Err(too_large_unzipped());
                }
                let rel = p.strip_prefix(root).expect("under root");
                let name = rel
                    .to_str()
                    .ok_or_else(|| format!("{}: a file name that is not UTF-8", p.display()))?
                    .to_string();
                let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                out.push((name, data, mode));
            }
        }
        Ok(())
    }
    let mut entries = vec![];
    walk(dir, dir, &mut entries, &mut 0, limit)?;
    Ok(write_zip(&entries))
}

/// The zip CloudFormation makes of inline code (`Code.ZipFile`): one
/// file, named for the runtime (`index.py`, `index.js`, `bootstrap`);
/// none for a function without code.
pub fn inline_zip(f: &Function) -> Vec<u8> {
    let Some(code) = &f.code else {
        return write_zip(&vec![]);
    };
    let family = f
        .runtime
        .runtime
        .as_deref()
        .and_then(|r| Runtime::parse(r).ok())
        .unwrap_or(Runtime::Provided);
    let mode = if family == Runtime::Provided {
        0o755
    } else {
        0o644
    };
    write_zip(&vec![(
        family.code_file().to_string(),
        code.as_bytes().to_vec(),
        mode,
    )])
}

/// `CodeSha256` and `CodeSize` of a function's code, as Lambda reports
/// them: its package's, or those of the zip of its inline code.
pub fn digest(f: &Function) -> (String, u64) {
    match &f.package {
        Some(p) => (p.sha256.clone(), p.size),
        None => {
            let z = inline_zip(f);
            (sha256_b64(&z), z.len() as u64)
        }
    }
}

/// The zip of a function's code (GetFunction's `Code.Location`).
pub fn zip_of(name: &str, f: &Function) -> Result<Vec<u8>> {
    match &f.package {
        Some(p) => std::fs::read(p.path(name)).with_context(|| format!("package {}", p.sha256)),
        None => Ok(inline_zip(f)),
    }
}

/// Where deployment `name` keeps its packages.
pub fn store_dir(name: &str) -> PathBuf {
    crate::paths::state_dir(name).join("code")
}

/// Puts a package in the store, if it is not there yet (written aside,
/// then renamed: a package in the store is whole). Call it under the
/// deployment's lock, in the change that records the model referring to
/// it, so that [`gc`] never sees it unreferenced.
pub fn store(name: &str, p: &Package) -> Result<()> {
    let path = p.path(name);
    if path.exists() {
        return Ok(());
    }
    let zip = p
        .zip
        .as_ref()
        .with_context(|| format!("package {} is not in the store", p.sha256))?;
    std::fs::create_dir_all(store_dir(name))?;
    let tmp = path.with_extension("zip.tmp");
    std::fs::write(&tmp, zip.as_slice()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Puts every package of `m`'s functions in the store.
pub fn store_model(name: &str, m: &Model) -> Result<()> {
    for p in m.functions.iter().filter_map(|f| f.package.as_ref()) {
        store(name, p)?;
    }
    Ok(())
}

/// Removes the packages no function or published version of the desired
/// model refers to (under the deployment's lock: not to be called while
/// holding it).
pub fn gc(name: &str) -> Result<()> {
    let dir = store_dir(name);
    if !dir.exists() {
        return Ok(());
    }
    let _lock = crate::state::lock(name)?;
    let s = crate::state::State::load(name)?;
    let keep: HashSet<PathBuf> = s
        .model
        .functions
        .iter()
        .filter_map(|f| f.package.as_ref())
        .map(|p| p.path(name))
        .collect();
    for e in std::fs::read_dir(&dir)?.flatten() {
        if !keep.contains(&e.path()) {
            std::fs::remove_file(e.path())
                .with_context(|| format!("removing {}", e.path().display()))?;
            tracing::info!("removed {}: no function refers to it", e.path().display());
        }
    }
    Ok(())
}

/// Lays a function's code out under its task root (an empty directory):
/// its package's files as in the zip, or its inline code as the file
/// CloudFormation would write (`index.py`, `index.js`, `bootstrap`, the
/// last executable).
pub fn lay_out(task: &Path, family: Runtime, inline: &str, package: Option<&Path>) -> Result<()> {
    match package {
        Some(zip) => {
            let f = std::fs::File::open(zip).with_context(|| format!("{}", zip.display()))?;
            zip::ZipArchive::new(f)
                .and_then(|mut a| a.extract(task))
                .with_context(|| format!("unzipping {} into {}", zip.display(), task.display()))
        }
        None => {
            use std::os::unix::fs::PermissionsExt as _;
            let file = task.join(family.code_file());
            std::fs::write(&file, inline)?;
            if family == Runtime::Provided {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        }
    }
}

/// The code of a CreateFunction or UpdateFunctionCode request.
#[derive(Debug, Clone)]
pub enum Source {
    /// Inline text (bytes that are no zip archive but UTF-8: this
    /// project's convention, as a template's `Code.ZipFile`).
    Inline(String),
    Package(Package),
}

/// The code a request gives (`req` holds `ZipFile`, `S3Bucket`, ...:
/// CreateFunction's `Code`, UpdateFunctionCode's body), checked as Lambda
/// checks it; `None` when it gives none. `ZipFile` bytes that begin as a
/// zip archive must be one; others are inline code when they are text.
pub fn from_request(req: &Value) -> Result<Option<Source>, ApiError> {
    if req.get("ImageUri").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid(
            "ImageUri: container images are not supported here; give the function's code as a zip (ZipFile)",
        ));
    }
    let b64 = match req.get("ZipFile") {
        None | Some(Value::Null) => {
            if let Some(key) = req.get("S3Key").and_then(Value::as_str) {
                return Err(ApiError::invalid(format!(
                    "S3Key: no object {key} here; this project runs code from local assets only: give the zip itself (ZipFile)"
                )));
            }
            return Ok(None);
        }
        Some(Value::String(s)) => s,
        Some(_) => return Err(ApiError::invalid("ZipFile: base64 bytes expected")),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| ApiError::invalid("ZipFile: not base64"))?;
    if is_zip(&bytes) {
        return Package::from_zip(bytes)
            .map(|p| Some(Source::Package(p)))
            .map_err(ApiError::invalid);
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(Source::Inline(text))),
        Err(_) => Err(ApiError::invalid(NOT_A_ZIP)),
    }
}

/// Lambda's answer to a request over [`MAX_REQUEST_BYTES`].
pub fn request_too_large(operation: &str) -> ApiError {
    ApiError::new(
        413,
        "RequestEntityTooLargeException",
        format!(
            "Request must be smaller than {MAX_REQUEST_BYTES} bytes for the {operation} operation"
        ),
    )
}

/// Lambda's answer to a package without a `Runtime`.
pub const RUNTIME_NEEDED: &str =
    "Runtime and Handler are mandatory parameters for functions created with deployment packages.";

/// [`RUNTIME_NEEDED`] when `f` has a package and no `Runtime`.
pub fn needs_runtime(f: &Function) -> Option<&'static str> {
    (f.package.is_some() && f.runtime.runtime.is_none()).then_some(RUNTIME_NEEDED)
}

#[cfg(test)]
pub(crate) mod tests;
