//! The `config` fuzz target compiles the `fawkes` binary's modules by path
//! (its loader refers to their config types), and `cargo fuzz` is not part
//! of the test run: this test fails when a module is added to the binary
//! and not to the fuzz target, instead of the next hand-run fuzz campaign.

use std::path::Path;

#[test]
fn the_config_fuzz_target_includes_every_module_of_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::fs::read_to_string(root.join("fuzz/fuzz_targets/config.rs"))
        .expect("read fuzz/fuzz_targets/config.rs");
    let bin = root.join("src/bin/fawkes");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&bin).expect("read src/bin/fawkes") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let module = if entry.path().is_dir() {
            if !entry.path().join("mod.rs").exists() {
                continue;
            }
            format!("{name}/mod.rs")
        } else if name.ends_with(".rs") && name != "main.rs" {
            name
        } else {
            continue;
        };
        let path = format!("#[path = \"../../src/bin/fawkes/{module}\"]");
        if !target.contains(&path) {
            missing.push(module);
        }
    }
    assert!(
        missing.is_empty(),
        "fuzz/fuzz_targets/config.rs does not include these modules of src/bin/fawkes: {missing:?}"
    );
}
