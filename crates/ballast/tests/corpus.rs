//! The bad-input corpus (`tests/corpus/`): every file is run as its header says and must end
//! with the exit status and say the fragments it names. See `tests/corpus/README.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Entry {
    path: PathBuf,
    args: Vec<String>,
    exit: i32,
    says: Vec<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

fn header(path: &Path) -> Entry {
    let text = std::fs::read_to_string(path).unwrap();
    let field = |name: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("# {name}: ")))
            .map(str::to_string)
            .collect()
    };
    let file = path.to_str().unwrap();
    let [run] = field("run")
        .try_into()
        .unwrap_or_else(|_| panic!("{file}: one `# run:` line"));
    let [exit] = field("exit")
        .try_into()
        .unwrap_or_else(|_| panic!("{file}: one `# exit:` line"));
    Entry {
        path: path.to_path_buf(),
        args: run
            .split_whitespace()
            .map(|a| a.replace("{}", file))
            .collect(),
        exit: exit.parse().unwrap(),
        says: field("says"),
    }
}

#[test]
fn every_bad_input_gets_its_exit_status_and_message() {
    let mut entries: Vec<Entry> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| header(&p))
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(
        entries.len() >= 20,
        "the corpus lost entries: {}",
        entries.len()
    );
    let mut failures = Vec::new();
    for entry in &entries {
        let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(&entry.args)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let name = entry.path.file_name().unwrap().to_string_lossy();
        if out.status.code() != Some(entry.exit) {
            failures.push(format!(
                "{name}: exit {:?}, want {}: {said}",
                out.status.code(),
                entry.exit
            ));
        }
        for fragment in entry.says.iter().filter(|f| !said.contains(f.as_str())) {
            failures.push(format!("{name}: does not say {fragment:?}: {said}"));
        }
        if said.contains("panicked") {
            failures.push(format!("{name}: panicked: {said}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} entries failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
    println!(
        "{} bad inputs, each with its exit status and message",
        entries.len()
    );
}
