//! `AWS::Lambda::Function`'s `Code`, from a template: inline
//! (`ZipFile`), a local path (a directory, a zip or a file, as `aws
//! cloudformation package` takes `Code` before it uploads it), or
//! `S3Bucket` / `S3Key` naming an asset of a synthesized CDK app, found in
//! the app's asset manifests (`<Stack>.assets.json`) next to the template.
//! Paths are relative to the template's directory. Packages are read,
//! checked and hashed here ([`crate::lambda::code::Package`]); the
//! deployment stores them.
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Builder;
use crate::{
    lambda::code::Package,
    template::{ModelError, Result},
};

impl Builder<'_> {
    /// A function's `Code` (`path`: `Resources.<id>.Properties`): inline
    /// text, or a package.
    pub(super) fn function_code(
        &self,
        raw: &Value,
        path: &str,
    ) -> Result<(Option<String>, Option<Package>)> {
        let field = format!("{path}.Code");
        let Some(code) = raw.get("Code") else {
            return Ok((None, None));
        };
        let dir = self.code_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        match self.r.resolve(code, &field)? {
            Value::String(p) if p.starts_with("s3://") => Err(ModelError::new(
                field,
                format!("{p}: this project runs code from local assets only: give a local directory or zip"),
            )),
            Value::String(p) => local(&dir, &p)
                .map(|pkg| (None, Some(pkg)))
                .map_err(|e| ModelError::new(field, e)),
            Value::Object(o) => {
                let given: Vec<&str> = ["ZipFile", "S3Key", "ImageUri"]
                    .into_iter()
                    .filter(|k| o.get(*k).is_some_and(|v| !v.is_null()))
                    .collect();
                match given.as_slice() {
                    ["ZipFile"] => match &o["ZipFile"] {
                        Value::String(s) => {
                            Ok((Some(s.clone()).filter(|c| !c.trim().is_empty()), None))
                        }
                        _ => Err(ModelError::new(format!("{field}.ZipFile"), "must be a string")),
                    },
                    ["S3Key"] => {
                        let key = o["S3Key"].as_str().ok_or_else(|| {
                            ModelError::new(format!("{field}.S3Key"), "must be a string")
                        })?;
                        let bucket = o.get("S3Bucket").and_then(Value::as_str);
                        let subst = |s: &str| {
                            s.replace("${AWS::AccountId}", &self.m.account)
                                .replace("${AWS::Region}", &self.m.region)
                                .replace("${AWS::Partition}", "aws")
                        };
                        let asset = find_asset(&dir, bucket, key, &subst)
                            .map_err(|e| ModelError::new(format!("{field}.S3Key"), e))?
                            .ok_or_else(|| {
                                ModelError::new(
                                    format!("{field}.S3Key"),
                                    format!(
                                        "no asset {key} in {}; this project runs code from local assets only",
                                        dir.display()
                                    ),
                                )
                            })?;
                        asset
                            .package()
                            .map(|pkg| (None, Some(pkg)))
                            .map_err(|e| ModelError::new(format!("{field}.S3Key"), e))
                    }
                    ["ImageUri"] => Err(ModelError::new(
                        format!("{field}.ImageUri"),
                        "container images are not supported here; give the function's code as a zip, a directory or ZipFile",
                    )),
                    [] => Err(ModelError::new(
                        field,
                        "give ZipFile, S3Bucket and S3Key, or a local path",
                    )),
                    _ => Err(ModelError::new(
                        field,
                        format!("one of ZipFile, S3Key or ImageUri, not {}", given.join(" and ")),
                    )),
                }
            }
            _ => Err(ModelError::new(
                field,
                "a local path, or ZipFile, or S3Bucket and S3Key",
            )),
        }
    }
}

/// A local path (relative to `dir`): a directory's files, a zip, or any
/// other file zipped alone.
fn local(dir: &Path, p: &str) -> std::result::Result<Package, String> {
    let full = dir.join(p);
    let meta = std::fs::metadata(&full).map_err(|e| {
        format!(
            "{p}: {} (paths are relative to the template's directory, {})",
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                _ => e.to_string(),
            },
            dir.display()
        )
    })?;
    let r = if meta.is_dir() {
        Package::from_dir(&full)
    } else {
        Package::from_file(&full)
    };
    r.map_err(|e| format!("{p}: {e}"))
}

/// A file asset of a CDK app, as its asset manifest describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// Its id (the hash in `files`).
    pub id: String,
    /// `source.path`, from the manifest's directory.
    pub path: PathBuf,
    /// `source.packaging`: `zip` (a directory, zipped) or `file` (as it is).
    pub packaging: String,
    /// The manifest that names it.
    pub manifest: PathBuf,
}

impl Asset {
    /// The asset as a package.
    pub fn package(&self) -> std::result::Result<Package, String> {
        let what = || format!("asset {} of {}", self.id, self.manifest.display());
        let meta = std::fs::metadata(&self.path).map_err(|_| {
            format!(
                "{} ({}) does not exist: run `cdk synth` again",
                self.path.display(),
                what()
            )
        })?;
        let r = match (self.packaging.as_str(), meta.is_dir()) {
            ("zip", true) => Package::from_dir(&self.path),
            ("zip" | "file", false) => Package::from_file(&self.path),
            ("file", true) => Err("a directory, but its packaging is file".into()),
            (other, _) => Err(format!("packaging {other:?}: zip or file expected")),
        };
        r.map_err(|e| format!("{} ({}): {e}", self.path.display(), what()))
    }
}

/// The asset manifests of the cloud assembly in `dir`: every
/// `*.assets.json`, and those `manifest.json` lists (artifacts of type
/// `cdk:asset-manifest`).
fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".assets.json"))
        })
        .collect();
    if let Some(m) = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    {
        for a in m["artifacts"].as_object().into_iter().flat_map(|o| o.values()) {
            if a["type"] == "cdk:asset-manifest" {
                if let Some(f) = a["properties"]["file"].as_str() {
                    found.push(dir.join(f));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The file asset published as `key` (and to `bucket`, when given: a
/// manifest's `bucketName` after `subst` replaces its placeholders,
/// `${AWS::AccountId}` and the like), in the asset manifests in `dir`.
pub fn find_asset(
    dir: &Path,
    bucket: Option<&str>,
    key: &str,
    subst: &dyn Fn(&str) -> String,
) -> std::result::Result<Option<Asset>, String> {
    for manifest in manifests(dir) {
        let text = std::fs::read(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
        let m: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("{}: not JSON: {e}", manifest.display()))?;
        for (id, asset) in m["files"].as_object().into_iter().flatten() {
            let published = asset["destinations"]
                .as_object()
                .into_iter()
                .flat_map(|d| d.values())
                .any(|d| {
                    d["objectKey"].as_str() == Some(key)
                        && bucket.is_none_or(|b| {
                            d["bucketName"].as_str().is_none_or(|n| subst(n) == b)
                        })
                });
            if !published {
                continue;
            }
            let source = &asset["source"];
            let Some(path) = source["path"].as_str() else {
                return Err(format!(
                    "asset {id} of {} is built by a command (source.executable); this project runs code from local assets only",
                    manifest.display()
                ));
            };
            let base = manifest.parent().unwrap_or(dir);
            return Ok(Some(Asset {
                id: id.clone(),
                path: base.join(path),
                packaging: source["packaging"].as_str().unwrap_or("file").to_string(),
                manifest: manifest.clone(),
            }));
        }
    }
    Ok(None)
}
