//! A function's code as Lambda takes it: real zips through boto3's
//! CreateFunction and UpdateFunctionCode (tests/fixtures/function_code.py:
//! a Python handler in a subdirectory importing its own module, a Node.js
//! one in two files, a custom runtime's executable bootstrap, each
//! reaching a database through its ENI; CodeSha256 as AWS computes it;
//! refusals in AWS's words; reserved concurrency), templates whose `Code`
//! is a local directory or zip, a synthesized CDK app's asset
//! (tests/fixtures/cdk_asset/), and the content-addressed store of
//! packages. Also `vpc run`'s invocation to repeat (what `cargo xtask run`
//! shows).
use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use vpc_tests::{fixture, peer_server, text, Deployment, FAST};

const TEMPLATE: &str = fixture!("function_code.yaml");
const DB: &str = "10.0.1.10:5432";

/// A directory of the test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(vpc_tests::unique_name(tag));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn write(&self, rel: &str, data: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Python (the venv's) running `script` with `args`: its stdout.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(vpc_tests::pyenv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// CodeSha256 of a file as AWS computes it, by Python's hashlib.
fn code_sha256(path: &Path) -> String {
    python(
        "import base64, hashlib, sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1], 'rb').read()).digest()).decode())",
        &[path.to_str().unwrap()],
    )
    .trim()
    .to_string()
}

/// The packages in a deployment's store (hex SHA-256).
fn stored(d: &Deployment) -> BTreeSet<String> {
    std::fs::read_dir(vpc::paths::state_dir(&d.name).join("code"))
        .map(|r| {
            r.flatten()
                .map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .trim_end_matches(".zip")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn invoke(d: &Deployment, f: &str, payload: &Value) -> Value {
    let out = d.vpc(&["invoke", f, "--payload", &payload.to_string()]);
    assert!(out.status.success(), "{f}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{f}: {e}: {}", text(&out)))
}

fn configuration(d: &Deployment, f: &str) -> Value {
    vpc::api::call(
        &d.name,
        "GET",
        &format!("/2015-03-31/functions/{f}/configuration"),
        b"",
    )
    .unwrap()
    .ok()
    .unwrap()
    .json()
}

/// boto3 creates functions from real zips (built with Python's zipfile),
/// updates their code, publishes versions and reserves concurrency, each
/// answer checked against AWS's in function_code.py; the store then holds
/// exactly the packages a function or version refers to, and DeleteFunction
/// takes its own.
#[test]
fn boto3_runs_real_zips_and_their_hashes_are_awss() {
    let d = Deployment::up(
        "code",
        TEMPLATE,
        &["--eni-delay", "100ms", "--api-addr", "127.0.0.1:0"],
    );
    let url = d.status()["api_url"].as_str().unwrap().to_string();
    let db = peer_server(&d.netns("Db"), DB);
    let out = Command::new(vpc_tests::pyenv_python())
        .arg(vpc_tests::fixture_path("function_code.py"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("function_code: ok"), "{}", text(&out));
    assert!(db.stop() >= 6, "the handlers reached the database");
    let hashes: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // The Python and the Node.js handler, through their ENI.
    let eni = d.eni_address("Subnet");
    let seen = hashes["seen"].as_array().unwrap();
    assert_eq!(seen.len(), 2);
    for s in seen {
        assert_eq!(s.as_str().unwrap().rsplit_once(':').unwrap().0, eni, "{s}");
    }
    let set = |k: &str| -> BTreeSet<String> {
        hashes[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    };
    // Content-addressed, kept while referred to: the first zip went with
    // the update that replaced it; the version keeps its own.
    assert_eq!(stored(&d), set("keep"));
    assert!(stored(&d).is_disjoint(&set("gone")));
    let out = d.vpc(&["delete-function", "orders"]);
    assert!(out.status.success(), "{}", text(&out));
    let left = stored(&d);
    assert!(left.is_disjoint(&set("orders")), "{left:?}");
    assert_eq!(left.len(), 2, "catalog's and custom's: {left:?}");
}

/// A template whose functions' `Code` is a local directory and a local
/// .zip (relative to the template's directory, wherever `vpc up` runs):
/// the Python handler in a subdirectory imports its module, the Node.js
/// one its second file, both reach the database through their ENI; the
/// zip's CodeSha256 is its file's; the store holds both packages. A
/// changed directory applied with `vpc apply` is a new package that runs
/// at the next invocation, and the old one leaves the store.
#[test]
fn a_template_runs_code_from_a_local_directory_and_a_local_zip() {
    let dir = TempDir::new("codepaths");
    dir.write("python/app/__init__.py", "");
    dir.write(
        "python/app/db.py",
        "import os, socket\n\ndef ask_db():\n    with socket.create_connection((os.environ['DB_HOST'], 5432), timeout=5) as s:\n        s.sendall(b'hello\\n')\n        return s.makefile().readline().strip()\n",
    );
    let handler = |v: &str| {
        format!("from app.db import ask_db\n\ndef handler(event, context):\n    return {{'version': '{v}', 'seen_by_db': ask_db()}}\n")
    };
    dir.write("python/app/handler.py", &handler("dir-1"));
    dir.write(
        "node/src/index.js",
        "const { ask } = require('./db');\nexports.handler = async () => ({ version: 'zip-1', seen_by_db: await ask() });\n",
    );
    dir.write(
        "node/src/db.js",
        "const net = require('net');\nexports.ask = () => new Promise((resolve, reject) => { const s = net.connect(5432, process.env.DB_HOST, () => s.write('hello\\n')); let d = ''; s.on('data', (x) => { d += x; if (d.includes('\\n')) { s.end(); resolve(d.trim()); } }); s.on('error', reject); });\n",
    );
    // The zip, by Python's zipfile (not by the code under test).
    let zip = dir.0.join("dist/node.zip");
    std::fs::create_dir_all(zip.parent().unwrap()).unwrap();
    python(
        "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    z.write(sys.argv[2] + '/src/index.js', 'src/index.js')\n    z.write(sys.argv[2] + '/src/db.js', 'src/db.js')\n",
        &[zip.to_str().unwrap(), dir.0.join("node").to_str().unwrap()],
    );
    let functions = r#"
  PyFn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: fromdir
      Runtime: python3.12
      Handler: app/handler.handler
      Code: ./python
      ReservedConcurrentExecutions: 3
      Environment: {Variables: {DB_HOST: !GetAtt Db.PrivateIp}}
      VpcConfig: {SubnetIds: [!Ref Subnet], SecurityGroupIds: [!Ref FnSg]}
  NodeFn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: fromzip
      Runtime: nodejs20.x
      Handler: src/index.handler
      Code: dist/node.zip
      Environment: {Variables: {DB_HOST: !GetAtt Db.PrivateIp}}
      VpcConfig: {SubnetIds: [!Ref Subnet], SecurityGroupIds: [!Ref FnSg]}
"#;
    let template = dir.write("template.yaml", &format!("{TEMPLATE}{functions}"));
    let d = Deployment::up_file("codetpl", &template, FAST);
    let db = peer_server(&d.netns("Db"), DB);
    let eni = d.eni_address("Subnet");
    for (f, version) in [("fromdir", "dir-1"), ("fromzip", "zip-1")] {
        let r = invoke(&d, f, &json!({}));
        assert_eq!(r["version"], version, "{r}");
        assert_eq!(
            r["seen_by_db"]
                .as_str()
                .unwrap()
                .rsplit_once(':')
                .unwrap()
                .0,
            eni,
            "{f}: {r}"
        );
    }
    // The zip is the package as it is: its hash is the file's.
    let c = configuration(&d, "fromzip");
    assert_eq!(c["CodeSha256"], code_sha256(&zip), "{c}");
    assert_eq!(c["CodeSize"], std::fs::metadata(&zip).unwrap().len());
    let before = configuration(&d, "fromdir")["CodeSha256"].clone();
    assert_eq!(stored(&d).len(), 2);
    // The template's reservation is GetFunction's Concurrency.
    let g = vpc::api::call(&d.name, "GET", "/2015-03-31/functions/fromdir", b"")
        .unwrap()
        .json();
    assert_eq!(g["Concurrency"], json!({"ReservedConcurrentExecutions": 3}));
    let out = text(&d.vpc(&["get-function", "fromdir"]));
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(
        field("ReservedConcurrentExecutions").as_deref(),
        Some("3"),
        "{out}"
    );
    assert_eq!(
        field("CodeSha256"),
        before.as_str().map(str::to_string),
        "{out}"
    );
    // A new handler in the directory, applied: a new package, a new process.
    dir.write("python/app/handler.py", &handler("dir-2"));
    let out = d.vpc(&["apply", template.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let after = configuration(&d, "fromdir")["CodeSha256"].clone();
    assert_ne!(after, before);
    assert_eq!(invoke(&d, "fromdir", &json!({}))["version"], "dir-2");
    assert_eq!(stored(&d).len(), 2, "the old package left the store");
    assert!(db.stop() >= 3);
}

/// The layout `cdk synth` writes: the template in cdk.out refers to its
/// function's code as an S3 asset (`Fn::Sub` bucket, `<hash>.zip` key);
/// `vpc up` finds it through the assets manifest and the function (a
/// handler importing its asset's other module) answers. The same template
/// without its assets is refused, naming the resource and field, and
/// nothing is built.
#[test]
fn a_cdk_apps_asset_comes_up_and_answers() {
    let cdk = vpc_tests::fixture_path("cdk_asset");
    let template = cdk.join("CodeAssetStack.template.json");
    let d = Deployment::up_file("cdk", &template, FAST);
    let items = json!({"items": [{"price": 3, "qty": 2}, {"price": 5, "qty": 1}]});
    let r = invoke(&d, "Handler886CB40B", &items);
    assert_eq!(r["total"], 11, "{r}");
    assert_eq!(r["function"], format!("{}-Handler886CB40B", d.name));
    // The package in the store is the asset directory's files, and its
    // name is its CodeSha256.
    let c = configuration(&d, "Handler886CB40B");
    let hex = stored(&d).into_iter().next().expect("a package");
    let file = vpc::paths::state_dir(&d.name).join(format!("code/{hex}.zip"));
    assert_eq!(c["CodeSha256"], code_sha256(&file), "{c}");
    let names = python(
        "import sys, zipfile; print(' '.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        &[file.to_str().unwrap()],
    );
    assert_eq!(names.trim(), "index.py orders.py");

    // Without its assets (the template alone, elsewhere).
    let alone = TempDir::new("cdkalone");
    std::fs::copy(&template, alone.0.join("CodeAssetStack.template.json")).unwrap();
    let name = vpc_tests::unique_name("cdkmiss");
    let out = vpc_tests::vpc(
        &name,
        &[
            "up",
            alone
                .0
                .join("CodeAssetStack.template.json")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains(&format!(
            "Resources.Handler886CB40B.Properties.Code.S3Key: no asset d54777efdec6e92694a9c57f2fcb5f7728b5bcc3fc88e5b88b825e815b3ddd60.zip in {}; this project runs code from local assets only",
            alone.0.display()
        )),
        "{msg}"
    );
    assert!(vpc_tests::namespaces_with_prefix(&name).is_empty());
    assert!(!vpc::paths::state_dir(&name).exists());
}

/// `vpc run --listen HOST:PORT --invoke F=PAYLOAD` (what `cargo xtask run`
/// runs on the default template): once the function is Active it is
/// invoked, and the command to repeat is shown with its answer, the
/// handler having reached the listener through its ENI; SIGTERM tears it
/// all down.
#[test]
fn vpc_run_shows_an_invocation_to_repeat() {
    let name = vpc_tests::unique_name("run");
    let mut child = Command::new(vpc_tests::vpc_bin())
        .args(["--name", &name, "run", "default", "--eni-delay", "100ms"])
        .args(["--listen", "DatabaseInstance:5432"])
        .args(["--invoke", r#"orders={"order": 1}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let command = format!(r#"$ vpc --name {name} invoke orders --payload '{{"order": 1}}'"#);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = vec![];
    let answer = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no invocation shown:\n{}", seen.join("\n")));
        if line.trim() == command {
            break rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        seen.push(line);
    };
    // SIGTERM: down, as on Ctrl-C.
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let v: Value = serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(v["connected"], true, "{v}");
    assert_eq!(v["sent"], json!({"order": 1}));
    assert!(status.success(), "{status}");
    assert!(vpc_tests::namespaces_with_prefix(&name).is_empty());
}
