//! Every file of the fuzzing corpus (`fuzz/corpus/<target>/`: seeds from the hostile-input
//! tables and fixtures, and what the fuzzers kept) through its target, on the stable
//! toolchain: a finding fixed once stays fixed. Long runs: `scripts/fuzz.sh <target> <secs>`.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (name, target) in authgate::fuzz_targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for f in files {
            let data = std::fs::read(&f).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails its target", f.display());
            total += 1;
        }
    }
    assert!(total >= 100, "only {total} corpus files");
}
