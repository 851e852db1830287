//! The `ballast` command as a user runs it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn ballast(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ballast runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The CRD folders that must hold exactly what `ballast crds --dir` writes: the repository's and
/// the Helm chart's (Helm installs the files of a chart's `crds/` as they are).
const CRD_FOLDERS: [&str; 2] = ["crds", "deploy/helm/ballast/crds"];

#[test]
fn crds_folders_are_fresh() {
    for folder in CRD_FOLDERS {
        let dir = repo_root().join(folder);
        let mut stale = Vec::new();
        let mut expected = Vec::new();
        for crd in ballast_api::crds() {
            let name = ballast_api::crd_file_name(&crd);
            expected.push(name.clone());
            let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            if on_disk != ballast_api::crd_yaml(&crd) {
                stale.push(name);
            }
        }
        let mut extra: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        extra.retain(|f| f.ends_with(".yaml") && !expected.contains(f));
        assert!(
            stale.is_empty() && extra.is_empty(),
            "{folder}/ is stale (changed or missing: {stale:?}; not generated: {extra:?}); regenerate with `cargo run -p ballast -- crds --dir {folder}`"
        );
    }
}

#[test]
fn crds_command_prints_the_folder() {
    let out = ballast(&["crds"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let from_files: Vec<String> = ballast_api::crds()
        .iter()
        .map(|c| {
            std::fs::read_to_string(repo_root().join("crds").join(ballast_api::crd_file_name(c)))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(text(&out.stdout), from_files.join("---\n"));
}

#[test]
fn seed_examples_convert_then_validate() {
    for fixture in [
        "seed-api-hpa.yaml",
        "seed-spot-general.yaml",
        "keda-scaledobject.yaml",
        "vpa.yaml",
        "karpenter-v1.yaml",
    ] {
        let path = format!("crates/api/tests/fixtures/{fixture}");
        let converted = ballast(&["convert", "-f", &path], None);
        assert!(
            converted.status.success(),
            "{fixture}: {}",
            text(&converted.stderr)
        );
        let validated = ballast(&["validate", "-f", "-"], Some(&text(&converted.stdout)));
        assert!(
            validated.status.success(),
            "{fixture}: {}",
            text(&validated.stdout)
        );
        assert!(
            text(&validated.stdout).contains(" 0 invalid"),
            "{}",
            text(&validated.stdout)
        );
    }
}

#[test]
fn convert_reports_dropped_fields_and_strict_fails_on_them() {
    let path = "crates/api/tests/fixtures/keda-scaledobject.yaml";
    let out = ballast(&["convert", "-f", path], None);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("dropped spec.triggers[4]"),
        "{}",
        text(&out.stderr)
    );
    let strict = ballast(&["convert", "--strict", "-f", path], None);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn validate_names_the_bad_field_and_fails() {
    let bad = r#"
apiVersion: autoscaling.ballast.dev/v1
kind: HorizontalAutoscaler
metadata: { name: web, namespace: default }
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  minReplicas: 8
  maxReplicas: 4
---
apiVersion: nodes.ballast.dev/v1
kind: NodePool
metadata: { name: general }
spec:
  limits: { cpu: "lots" }
  template:
    spec:
      nodeClassRef: { group: nodes.ballast.dev, kind: KwokNodeClass, name: kwok }
"#;
    let out = ballast(&["validate", "-f", "-"], Some(bad));
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains("HorizontalAutoscaler default/web: spec.minReplicas: minReplicas must be less than or equal to maxReplicas"), "{report}");
    assert!(
        report.contains("NodePool general: spec.limits.cpu"),
        "{report}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = ballast(&["validate", "-f", "no/such/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("reading no/such/file.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn version_prints_the_package_version() {
    let out = ballast(&["--version"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("ballast {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_cover_the_subcommands_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _ballast"),
        ("zsh", "#compdef ballast"),
        ("fish", "complete -c ballast"),
    ] {
        let out = ballast(&["completions", shell], None);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for sub in ["controller", "simulate", "explain", "completions"] {
            assert!(script.contains(sub), "{shell}: `{sub}` is not completed");
        }
    }
    let out = ballast(&["completions", "tcsh"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn bash_completion_is_valid_bash() {
    let out = ballast(&["completions", "bash"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    bash.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let checked = bash.wait_with_output().unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
}

#[test]
fn explain_takes_a_file_or_live_never_both() {
    let snapshot = "crates/horizontal/examples/snapshot.yaml";
    let out = ballast(
        &[
            "explain",
            "horizontal",
            "-f",
            snapshot,
            "--live",
            "shop/web",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
    let out = ballast(&["explain", "horizontal"], None);
    assert_eq!(out.status.code(), Some(2), "neither -f nor --live");
    let out = ballast(
        &[
            "explain",
            "horizontal",
            "-f",
            snapshot,
            "--save-snapshot",
            "x.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "--save-snapshot needs --live");
    // The node decisions read instance types as the controller does: the kwok provider's need
    // its catalog, named before anything is read.
    let out = ballast(&["explain", "provision", "--live"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--provider kwok needs --catalog FILE"),
        "{}",
        text(&out.stderr)
    );
    let out = ballast(&["explain", "vertical", "--live", "web"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("NAMESPACE/NAME"),
        "{}",
        text(&out.stderr)
    );
    let out = ballast(&["explain", "horizontal", "--live", "web"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("NAMESPACE/NAME"),
        "{}",
        text(&out.stderr)
    );
}

/// Installed as `kubectl-ballast`, the binary is the kubectl plugin `kubectl ballast`: it runs
/// under that file name and its usage lines say `kubectl ballast`.
#[cfg(unix)]
#[test]
fn runs_as_the_kubectl_plugin() {
    let dir = std::env::temp_dir().join(format!("ballast-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("kubectl-ballast");
    let _ = std::fs::remove_file(&plugin);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ballast"), &plugin).unwrap();
    let run = |args: &[&str]| Command::new(&plugin).args(args).output().unwrap();
    let help = run(&["--help"]);
    assert!(help.status.success(), "{}", text(&help.stderr));
    assert!(
        text(&help.stdout).contains("Usage: kubectl ballast"),
        "{}",
        text(&help.stdout)
    );
    let help = run(&["explain", "--help"]);
    assert!(help.status.success(), "{}", text(&help.stderr));
    let shown = text(&help.stdout);
    assert!(shown.contains("Usage: kubectl ballast explain"), "{shown}");
    assert!(shown.contains("--live [<NAMESPACE/NAME|POOL>]"), "{shown}");
    let explained = run(&[
        "explain",
        "horizontal",
        "-f",
        &format!(
            "{}/crates/horizontal/examples/snapshot.yaml",
            repo_root().display()
        ),
    ]);
    assert!(explained.status.success(), "{}", text(&explained.stderr));
    assert!(text(&explained.stdout).contains("Decision:"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn simulate_with_unplaceable_pods_fails_unless_allowed() {
    let scenario = repo_root().join("tests/corpus/simulate-nodepool-no-type.yaml");
    let out_dir =
        std::env::temp_dir().join(format!("ballast-cli-unplaceable-{}", std::process::id()));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "simulate",
            scenario.to_str().unwrap(),
            "--quiet",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ballast(&args, None)
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("3 pod(s) could not be placed"));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("not to be trusted"), "the banner is missing");
    let allowed = run(&["--allow-unschedulable"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stderr));
    assert!(text(&allowed.stderr).contains("warning: the results are not to be trusted"));
    assert!(
        !text(&allowed.stdout).contains("-0.00"),
        "{}",
        text(&allowed.stdout)
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// The bundled scenarios are in the binary: a copy of it in a folder of its own, run from
/// another folder with no `simulations/` anywhere near, lists them, runs the default and one by
/// name, runs a scenario of the user's that names a bundled catalog and object, and refuses an
/// unknown name listing the names.
#[test]
fn bundled_scenarios_run_from_a_copied_binary_anywhere() {
    let base = std::env::temp_dir().join(format!("ballast-cli-bundled-{}", std::process::id()));
    let (bin_dir, work) = (base.join("bin"), base.join("elsewhere"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let bin = bin_dir.join("ballast");
    std::fs::copy(env!("CARGO_BIN_EXE_ballast"), &bin).unwrap();
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .current_dir(&work)
            .output()
            .expect("the copied ballast runs")
    };
    let listed = run(&["simulate", "--list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("api-daily ") && l.ends_with("(the default)")),
        "{listed}"
    );
    assert!(listed.contains("week-mix "), "{listed}");

    for (args, first_line) in [
        (vec![], "bundled:api-daily.yaml"),
        (
            vec!["--scenario", "batch-burst"],
            "bundled:batch-burst.yaml",
        ),
    ] {
        let mut all = vec!["simulate", "--quiet", "--out", "out"];
        all.extend_from_slice(&args);
        let done = run(&all);
        assert!(done.status.success(), "{args:?}: {}", text(&done.stderr));
        assert_eq!(text(&done.stdout).lines().next(), Some(first_line));
        assert!(work.join("out/report.json").exists());
    }

    std::fs::write(
        work.join("mine.yaml"),
        "name: mine\nduration: 1h\ncatalog: bundled:aws-like\nobjects: [bundled:objects/general-pool.yaml]\n\
         workloads:\n- { name: web, replicas: 2, pod: { requests: { cpu: 500m, memory: 1Gi } }, load: { kind: Constant, value: 10 } }\n",
    )
    .unwrap();
    let mine = run(&["simulate", "mine.yaml", "--quiet", "--out", "mine-out"]);
    assert!(mine.status.success(), "{}", text(&mine.stderr));
    assert_eq!(text(&mine.stdout).lines().next(), Some("mine.yaml"));

    let unknown = run(&["simulate", "--scenario", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    let said = text(&unknown.stderr);
    assert!(
        said.contains("--scenario nope") && said.contains("week-mix"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// `simulate --objects DIR` on `crates/ballast/tests/simulate_objects/` (a Deployment, its HPA
/// and PDB, a Karpenter NodePool and EC2NodeClass, a ConfigMap, a text file), end to end.
#[test]
fn simulate_objects_runs_a_folder_of_manifests() {
    let work = std::env::temp_dir().join(format!("ballast-objects-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let fixture = "crates/ballast/tests/simulate_objects";
    let out = work.join("out");
    let out = out.to_str().unwrap();
    let ran = ballast(
        &["simulate", "--objects", fixture, "--quiet", "--out", out],
        None,
    );
    let said = text(&ran.stderr);
    assert!(ran.status.success(), "{said}");
    assert!(
        said.contains(
            "taken from crates/ballast/tests/simulate_objects: 1 Deployment, 1 EC2NodeClass, \
             1 HorizontalPodAutoscaler, 1 NodePool, 1 PodDisruptionBudget"
        ),
        "{said}"
    );
    assert!(
        said.contains("warning: 1 object(s) not simulated:")
            && said.contains("settings.json: document 1: v1 ConfigMap shop/web-settings"),
        "{said}"
    );
    let shown = text(&ran.stdout);
    assert_eq!(
        shown.lines().next(),
        Some("crates/ballast/tests/simulate_objects"),
        "{shown}"
    );
    // The report is the objects': one run of the workload `web`, scaled by its HPA on nodes of
    // the Karpenter pool.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("out/report.json")).unwrap())
            .unwrap();
    let variant = &report["variants"][0];
    assert_eq!(variant["variant"], "baseline", "{variant}");
    let web = &variant["workloads"][0];
    assert_eq!(web["name"], "web", "{variant}");
    assert!(web["rescales"].as_u64().unwrap() > 0, "{web}");
    assert!(variant["nodesLaunched"].as_u64().unwrap() > 0, "{variant}");
    let series = std::fs::read_to_string(work.join("out/baseline.csv")).unwrap();
    assert!(series.lines().next().unwrap().contains("web"), "{series}");

    // Saved, then run from the file: the same figures.
    let saved = work.join("scenario.yaml");
    let saved = saved.to_str().unwrap();
    let done = ballast(
        &["simulate", "--objects", fixture, "--save-scenario", saved],
        None,
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(text(&done.stdout).is_empty());
    let again = work.join("again");
    let again_out = again.to_str().unwrap();
    let rerun = ballast(&["simulate", saved, "--quiet", "--out", again_out], None);
    assert!(rerun.status.success(), "{}", text(&rerun.stderr));
    let rerun_report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("report.json")).unwrap()).unwrap();
    assert_eq!(rerun_report["variants"][0]["cost"], variant["cost"]);

    // Wrong input: a malformed manifest, an empty folder, a missing one.
    let bad = work.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("web.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: apps/v1\nkind: Deployment\n\
         metadata: {name: web}\nspec: {replicas: lots, template: {spec: {containers: []}}}\n",
    )
    .unwrap();
    let bad_arg = bad.to_str().unwrap();
    let failed = ballast(
        &["simulate", "--objects", bad_arg, "--quiet", "--out", out],
        None,
    );
    assert_eq!(failed.status.code(), Some(2));
    let said = text(&failed.stderr);
    assert!(
        said.contains("web.yaml: document 2: Deployment web: spec.replicas: invalid type"),
        "{said}"
    );
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let failed = ballast(
        &["simulate", "--objects", empty.to_str().unwrap(), "--quiet"],
        None,
    );
    assert_eq!(failed.status.code(), Some(2));
    assert!(text(&failed.stderr).contains("no *.yaml, *.yml or *.json file"));
    let failed = ballast(
        &["simulate", "--objects", "no/such/folder", "--quiet"],
        None,
    );
    assert_eq!(failed.status.code(), Some(2));
    assert!(text(&failed.stderr).contains("no/such/folder"));
    let _ = std::fs::remove_dir_all(&work);
}
