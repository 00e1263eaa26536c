use super::process::group_peak_kb;
use super::*;

#[test]
fn request_ids_are_uuid_v4() {
    let id = request_id();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
    assert_ne!(id, request_id());
}

#[test]
fn the_peak_memory_of_a_process_group() {
    let me = nix::unistd::getpgrp().as_raw();
    let kb = group_peak_kb(me).expect("this test's own group");
    assert!(kb > 1024, "{kb} kB");
    assert_eq!(group_peak_kb(i32::MAX), None);
}

#[test]
fn the_process_gets_lambdas_variables() {
    let claim = json!({
        "Runtime": "python3.11", "Handler": "index.handler", "MemorySize": 256,
        "Environment": {"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_REGION": "eu-west-1", "DB": "x"},
    });
    let v: HashMap<_, _> = variables(Runtime::Python, &claim, Path::new("/t"))
        .into_iter()
        .collect();
    assert_eq!(v["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
    assert_eq!(v["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(v["_HANDLER"], "index.handler");
    assert_eq!(v["LAMBDA_TASK_ROOT"], "/t");
    assert_eq!(v["TZ"], ":UTC");
    assert_eq!(v["DB"], "x");
    assert_eq!(v["AWS_DEFAULT_REGION"], "eu-west-1");
    assert!(v["LAMBDA_RUNTIME_DIR"].ends_with("pyenv"));
}
