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
        // Relative to the directory of the template that declares it.
        let id = path
            .strip_prefix("Resources.")
            .and_then(|p| p.split('.').next())
            .unwrap_or_default();
        let dir = self
            .code_dirs
            .get(self.r.scope_of(id))
            .cloned()
            .flatten()
            .unwrap_or_else(|| PathBuf::from("."));
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
        for a in m["artifacts"]
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
        {
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
                        && bucket
                            .is_none_or(|b| d["bucketName"].as_str().is_none_or(|n| subst(n) == b))
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

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, path::Path};

    use crate::{
        lambda::code::{tests::TempDir, Package},
        model::{build_at, Model, Quotas},
        template::ModelError,
    };

    const BASE: &str = "
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
";

    fn build(dir: &Path, functions: &str) -> Result<Model, ModelError> {
        build_at(
            &format!("{BASE}{functions}"),
            &HashMap::new(),
            &crate::template::Context::new("s"),
            Quotas::default(),
            None,
            Some(dir),
        )
    }

    fn package(m: &Model, id: &str) -> Package {
        m.function(id).unwrap().package.clone().expect("a package")
    }

    #[test]
    fn code_as_a_local_path_is_a_directory_a_zip_or_a_file_relative_to_the_template() {
        let d = TempDir::new("paths");
        d.write("src/app.py", b"from lib import x\n", 0o644);
        d.write("src/lib.py", b"x = 1\n", 0o644);
        let zip = Package::from_dir(&d.0.join("src")).unwrap();
        d.write("dist/app.zip", zip.zip.as_ref().unwrap(), 0o644);
        d.write("one/handler.py", b"def h(e, c): return e\n", 0o644);
        let m = build(
            &d.0,
            "
  Dir: {Type: AWS::Lambda::Function, Properties: {Runtime: python3.12, Handler: app.handler, Code: ./src}}
  Zip: {Type: AWS::Lambda::Function, Properties: {Runtime: python3.12, Handler: app.handler, Code: dist/app.zip}}
  File: {Type: AWS::Lambda::Function, Properties: {Runtime: python3.12, Handler: handler.h, Code: one/handler.py}}
",
        )
        .unwrap();
        // The directory and the zip made of it are the same package.
        assert_eq!(package(&m, "Dir"), zip);
        assert_eq!(package(&m, "Zip"), zip);
        assert!(package(&m, "Dir").zip.is_some(), "in hand, to be stored");
        assert!(m.function("Dir").unwrap().code.is_none());
        // One file, zipped alone under its name.
        let one = package(&m, "File");
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(one.zip.unwrap().to_vec())).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a.by_index(0).unwrap().name().unwrap(), "handler.py");
        // A package's bootstrap is a bootstrap.
        d.write("boot/bootstrap", b"#!/bin/sh\n", 0o755);
        let m = build(
            &d.0,
            "  B: {Type: AWS::Lambda::Function, Properties: {Runtime: provided.al2023, Code: boot}}\n",
        )
        .unwrap();
        assert_eq!(
            m.function("B").unwrap().runtime_api(),
            Some(crate::model::Runtime::Provided)
        );
    }

    #[test]
    fn a_bad_code_path_is_refused_naming_the_resource_and_field() {
        let d = TempDir::new("bad");
        d.write("broken.zip", b"PK\x03\x04 and then nothing", 0o644);
        d.write("src/app.py", b"", 0o644);
        for (code, field, what) in [
            ("./missing", "Code", "./missing: no such file or directory (paths are relative to the template's directory"),
            ("broken.zip", "Code", "broken.zip: Could not unzip uploaded file. Please check your file, then try to upload again."),
            ("s3://bucket/key.zip", "Code", "local assets only"),
            ("{ImageUri: x}", "Code.ImageUri", "container images"),
            ("{ZipFile: a, S3Key: b}", "Code", "one of ZipFile, S3Key or ImageUri"),
        ] {
            let e = build(
                &d.0,
                &format!("  F: {{Type: AWS::Lambda::Function, Properties: {{Runtime: python3.12, Handler: app.h, Code: {code}}}}}\n"),
            )
            .unwrap_err();
            assert_eq!(e.path, format!("Resources.F.Properties.{field}"), "{code}");
            assert!(e.message.contains(what), "{code}: {}", e.message);
        }
        assert!(build(
            &d.0,
            "  F: {Type: AWS::Lambda::Function, Properties: {Code: ./missing}}\n"
        )
        .unwrap_err()
        .message
        .contains(&d.0.display().to_string()));
        // A package runs on a Runtime.
        let e = build(
            &d.0,
            "  F: {Type: AWS::Lambda::Function, Properties: {Code: src}}\n",
        )
        .unwrap_err();
        assert_eq!(e.path, "Resources.F.Properties.Runtime");
        assert_eq!(e.message, crate::lambda::code::RUNTIME_NEEDED);
    }

    /// The layout `cdk synth` writes (tests/fixtures/cdk_asset/): the
    /// function's `S3Key` is found through the assets manifest, and its
    /// package is the asset directory's files.
    #[test]
    fn a_cdk_asset_is_found_through_the_assets_manifest() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cdk_asset");
        let text = std::fs::read_to_string(dir.join("CodeAssetStack.template.json")).unwrap();
        let m = build_at(
            &text,
            &HashMap::new(),
            &crate::template::Context::new("s"),
            Quotas::default(),
            None,
            Some(&dir),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = m.function("Handler886CB40B").unwrap();
        let asset = "asset.d54777efdec6e92694a9c57f2fcb5f7728b5bcc3fc88e5b88b825e815b3ddd60";
        assert_eq!(
            f.package,
            Some(Package::from_dir(&dir.join(asset)).unwrap())
        );
        assert_eq!(f.runtime.handler.as_deref(), Some("index.handler"));
        // Through the manifest: the bucket's placeholders resolved as the
        // template's Fn::Sub resolves them.
        let subst = |s: &str| {
            s.replace("${AWS::AccountId}", &m.account)
                .replace("${AWS::Region}", &m.region)
        };
        let key = "d54777efdec6e92694a9c57f2fcb5f7728b5bcc3fc88e5b88b825e815b3ddd60.zip";
        let bucket = format!("cdk-hnb659fds-assets-{}-{}", m.account, m.region);
        let a = super::find_asset(&dir, Some(&bucket), key, &subst)
            .unwrap()
            .unwrap();
        assert_eq!((a.path, a.packaging.as_str()), (dir.join(asset), "zip"));
        // Another bucket, another key: no asset.
        assert!(super::find_asset(&dir, Some("elsewhere"), key, &subst)
            .unwrap()
            .is_none());
        assert!(super::find_asset(&dir, None, "nope.zip", &subst)
            .unwrap()
            .is_none());
        // The template itself is an asset of packaging "file".
        let t = super::find_asset(
            &dir,
            None,
            "e41297e8d1acda9198f881825c1606f52d8af2d7b29eb73e538c57245654551e.json",
            &subst,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.packaging, "file");
    }

    #[test]
    fn assets_are_found_through_manifest_json_and_refused_when_not_local() {
        let d = TempDir::new("cdk");
        let manifest = |key: &str, source: &str| {
            format!(
                r#"{{"version": "48.0.0", "files": {{"abc": {{"source": {source}, "destinations": {{"current_account-current_region": {{"bucketName": "cdk-hnb659fds-assets-${{AWS::AccountId}}-${{AWS::Region}}", "objectKey": "{key}"}}}}}}}}, "dockerImages": {{}}}}"#
            )
        };
        // Named only by manifest.json, in a subdirectory: the path is
        // relative to the manifest.
        d.write(
            "sub/App.assets.json.txt",
            manifest("abc.zip", r#"{"path": "asset.abc", "packaging": "zip"}"#).as_bytes(),
            0o644,
        );
        d.write(
            "sub/asset.abc/index.py",
            b"def handler(e, c): return 1\n",
            0o644,
        );
        d.write(
            "manifest.json",
            br#"{"version": "48.0.0", "artifacts": {"App.assets": {"type": "cdk:asset-manifest", "properties": {"file": "sub/App.assets.json.txt"}}}}"#,
            0o644,
        );
        let f = |key: &str| {
            format!("  F: {{Type: AWS::Lambda::Function, Properties: {{Runtime: python3.12, Handler: index.handler, Code: {{S3Bucket: !Sub 'cdk-hnb659fds-assets-${{AWS::AccountId}}-${{AWS::Region}}', S3Key: {key}}}}}}}\n")
        };
        let m = build(&d.0, &f("abc.zip")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            package(&m, "F"),
            Package::from_dir(&d.0.join("sub/asset.abc")).unwrap()
        );
        // A key no manifest names.
        let e = build(&d.0, &f("other.zip")).unwrap_err();
        assert_eq!(e.path, "Resources.F.Properties.Code.S3Key");
        assert_eq!(
            e.message,
            format!(
                "no asset other.zip in {}; this project runs code from local assets only",
                d.0.display()
            )
        );
        // An asset built by a command, and one whose files are gone.
        d.write(
            "Exec.assets.json",
            manifest("exec.zip", r#"{"executable": ["make"]}"#).as_bytes(),
            0o644,
        );
        d.write(
            "Gone.assets.json",
            manifest("gone.zip", r#"{"path": "asset.gone", "packaging": "zip"}"#).as_bytes(),
            0o644,
        );
        let e = build(&d.0, &f("exec.zip")).unwrap_err();
        assert!(e.message.contains("source.executable"), "{e}");
        let e = build(&d.0, &f("gone.zip")).unwrap_err();
        assert!(
            e.message.contains("does not exist: run `cdk synth` again"),
            "{e}"
        );
    }

    #[test]
    fn reservations_leave_the_accounts_minimum_unreserved() {
        let d = TempDir::new("rc");
        let f = |a: u32, b: u32| {
            format!("  A: {{Type: AWS::Lambda::Function, Properties: {{ReservedConcurrentExecutions: {a}}}}}\n  B: {{Type: AWS::Lambda::Function, Properties: {{ReservedConcurrentExecutions: {b}}}}}\n")
        };
        assert!(build(&d.0, &f(450, 450)).is_ok());
        let e = build(&d.0, &f(450, 451)).unwrap_err();
        assert_eq!(
            e.path,
            "Resources.B.Properties.ReservedConcurrentExecutions"
        );
        assert!(e.message.ends_with("decreases account's UnreservedConcurrentExecution below its minimum value of [100]."), "{e}");
    }
}
