use std::{io::Read as _, os::unix::fs::PermissionsExt as _, path::PathBuf};

use base64::Engine as _;
use serde_json::json;

use super::*;

/// A directory of its own under the temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("vpc-code-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    pub fn write(&self, rel: &str, data: &[u8], mode: u32) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The entries of a zip: name, mode, contents.
fn entries(zip: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let mut a = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    (0..a.len())
        .map(|i| {
            let mut f = a.by_index(i).unwrap();
            let mut b = vec![];
            f.read_to_end(&mut b).unwrap();
            (
                f.name().unwrap().to_string(),
                f.unix_mode().unwrap_or(0) & 0o777,
                b,
            )
        })
        .collect()
}

#[test]
fn code_sha256_is_the_base64_of_the_sha256_of_the_zip() {
    // FIPS 180-2's "abc".
    assert_eq!(
        sha256_b64(b"abc"),
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    );
    let zip = write_zip(&vec![("app.py".into(), b"x = 1\n".to_vec(), 0o644)]);
    let p = Package::from_zip(zip.clone()).unwrap();
    assert_eq!(p.size, zip.len() as u64);
    assert_eq!(
        p.sha256,
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip))
    );
    // Its name in the store is the same hash in hex.
    assert_eq!(p.hex().len(), 64);
    assert!(p.path("d").ends_with(format!("code/{}.zip", p.hex())));
    // The bytes in hand or not, the same package.
    let stored = Package {
        zip: None,
        ..p.clone()
    };
    assert_eq!(stored, p);
    assert_eq!(serde_json::to_value(&p).unwrap()["zip"], Value::Null);
}

#[test]
fn a_directory_zips_the_same_whatever_its_times_with_its_layout_and_modes() {
    let d = TempDir::new("dir");
    d.write("app.py", b"from lib import helper\n", 0o600);
    d.write("lib/helper.py", b"def helper(): pass\n", 0o644);
    d.write("bootstrap", b"#!/bin/sh\n", 0o700);
    let a = zip_dir(&d.0, MAX_UNZIPPED_BYTES).unwrap();
    // Touched later, the files zip to the same bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(d.0.join("app.py"), b"from lib import helper\n").unwrap();
    let b = zip_dir(&d.0, MAX_UNZIPPED_BYTES).unwrap();
    assert_eq!(sha256_b64(&a), sha256_b64(&b));
    let e = entries(&a);
    let names: Vec<_> = e.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
    assert_eq!(
        names,
        [
            ("app.py", 0o644),
            ("bootstrap", 0o755),
            ("lib/helper.py", 0o644)
        ]
    );
    assert_eq!(e[2].2, b"def helper(): pass\n");
    // A change of contents is a new hash.
    d.write("lib/helper.py", b"def helper(): return 2\n", 0o644);
    assert_ne!(
        sha256_b64(&zip_dir(&d.0, MAX_UNZIPPED_BYTES).unwrap()),
        sha256_b64(&a)
    );
    // Over the limit: Lambda's words.
    assert_eq!(zip_dir(&d.0, 10).unwrap_err(), too_large_unzipped());
}

#[test]
fn what_does_not_unzip_or_unzips_too_large_is_refused_in_lambdas_words() {
    assert_eq!(
        Package::from_zip(b"not a zip".to_vec()).unwrap_err(),
        NOT_A_ZIP
    );
    let zip = write_zip(&vec![("a.py".into(), vec![b'x'; 4096], 0o644)]);
    // Cut short: no central directory.
    assert_eq!(
        Package::from_zip(zip[..zip.len() / 2].to_vec()).unwrap_err(),
        NOT_A_ZIP
    );
    // A flipped byte in the compressed data: the CRC (or inflate) fails.
    let mut bad = zip.clone();
    bad[40] ^= 0xff;
    assert_eq!(check_zip(&bad, MAX_UNZIPPED_BYTES).unwrap_err(), NOT_A_ZIP);
    // 4 KB unzipped (a few bytes zipped) over a 4 KB limit.
    assert!(check_zip(&zip, 4096).is_ok());
    assert_eq!(check_zip(&zip, 4095).unwrap_err(), too_large_unzipped());
    assert_eq!(
        too_large_unzipped(),
        "Unzipped size must be smaller than 262144000 bytes"
    );
}

#[test]
fn requests_give_a_zip_inline_text_or_an_error() {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let zip = write_zip(&vec![("app.py".into(), b"x=1".to_vec(), 0o644)]);
    match from_request(&json!({"ZipFile": b64(&zip)})).unwrap() {
        Some(Source::Package(p)) => assert_eq!(p.sha256, sha256_b64(&zip)),
        other => panic!("{other:?}"),
    }
    match from_request(&json!({"ZipFile": b64(b"tr a-z A-Z")})).unwrap() {
        Some(Source::Inline(t)) => assert_eq!(t, "tr a-z A-Z"),
        other => panic!("{other:?}"),
    }
    assert!(from_request(&json!({})).unwrap().is_none());
    let err = |v: Value| from_request(&v).unwrap_err();
    // Binary that is no zip, and a zip cut short.
    for bytes in [&b"\xff\xfe\x00garbage"[..], &zip[..20]] {
        let e = err(json!({"ZipFile": b64(bytes)}));
        assert_eq!((e.status, e.kind), (400, "InvalidParameterValueException"));
        assert_eq!(e.message, NOT_A_ZIP);
    }
    assert!(err(json!({"ZipFile": "%%%"})).message.contains("base64"));
    let e = err(json!({"S3Bucket": "b", "S3Key": "k.zip"}));
    assert!(e.message.contains("local assets only"), "{e}");
    assert!(err(json!({"ImageUri": "x"}))
        .message
        .starts_with("ImageUri"));
    let e = request_too_large("CreateFunction");
    assert_eq!((e.status, e.kind), (413, "RequestEntityTooLargeException"));
    assert_eq!(
        e.message,
        "Request must be smaller than 69905067 bytes for the CreateFunction operation"
    );
}

#[test]
fn a_package_is_laid_out_as_in_the_zip_and_inline_code_as_cloudformation_names_it() {
    let src = TempDir::new("src");
    src.write("src/index.js", b"exports.handler = async () => 1;\n", 0o644);
    src.write("src/lib/util.js", b"module.exports = 2;\n", 0o644);
    src.write("bootstrap", b"#!/bin/sh\necho hi\n", 0o755);
    let p = Package::from_dir(&src.0).unwrap();
    let zip = src.write("pkg.zip", p.zip.as_ref().unwrap(), 0o644);
    let task = TempDir::new("task");
    lay_out(&task.0, Runtime::Node, "", Some(&zip)).unwrap();
    assert_eq!(
        std::fs::read(task.0.join("src/lib/util.js")).unwrap(),
        b"module.exports = 2;\n"
    );
    assert!(task.0.join("src/index.js").is_file());
    let mode = |p: &str| {
        std::fs::metadata(task.0.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o111
    };
    assert_ne!(mode("bootstrap"), 0, "the executable bit is kept");
    assert_eq!(mode("src/index.js"), 0);
    assert!(!task.0.join("index.js").exists());

    for (family, file, exec) in [
        (Runtime::Python, "index.py", false),
        (Runtime::Node, "index.js", false),
        (Runtime::Provided, "bootstrap", true),
    ] {
        let t = TempDir::new("inline");
        lay_out(&t.0, family, "code", None).unwrap();
        assert_eq!(std::fs::read_to_string(t.0.join(file)).unwrap(), "code");
        let m = std::fs::metadata(t.0.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o111 != 0, exec, "{file}");
    }
}

#[test]
fn inline_code_reports_the_hash_of_the_zip_cloudformation_makes_of_it() {
    let m = crate::model::build(
        r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  P: {Type: AWS::Lambda::Function, Properties: {Runtime: python3.12, Handler: index.handler, Code: {ZipFile: "def handler(e, c): return e"}}}
  N: {Type: AWS::Lambda::Function, Properties: {}}
"#,
        &Default::default(),
        "t",
    )
    .unwrap();
    let p = m.function("P").unwrap();
    let (sha, size) = digest(p);
    let zip = inline_zip(p);
    assert_eq!(
        (sha.as_str(), size),
        (sha256_b64(&zip).as_str(), zip.len() as u64)
    );
    let e = entries(&zip);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].0.as_str(), e[0].2.as_slice()),
        ("index.py", &b"def handler(e, c): return e"[..])
    );
    // Stable: the same code, the same hash.
    assert_eq!(digest(p), digest(&p.clone()));
    // No code: an empty archive.
    assert_eq!(digest(m.function("N").unwrap()).1, 22);
}
