//! The scenarios shipped inside the binary, and where a scenario's files come from.
//!
//! Every file under `simulations/` that a bundled scenario reads (the scenarios, the catalog,
//! the objects, the traces) is compiled in with `include_str!`, about 32 KB of text in all, so an
//! installed `ballast` runs them from any directory and after the source tree has moved.
//!
//! A path of a scenario is read from one of two places:
//!
//! - the disk: a scenario given by path, and every relative path in it, resolved against the
//!   scenario file's folder (as before bundling);
//! - the bundle: a path written `bundled:PATH` (PATH under `simulations/`, e.g.
//!   `bundled:objects/general-pool.yaml`, or a catalog by its name alone, `bundled:aws-like`), and
//!   every relative path of a bundled scenario.
//!
//! Why an explicit prefix rather than falling back to the bundle when a path does not exist: a
//! fallback would make a mistyped or moved file silently read the bundled one, and a user's file
//! of the same name would shadow the bundle without a word. `bundled:` is visible in the scenario
//! and fails loudly when it names nothing.
//!
//! Inside the simulator a bundled file's path is `bundled:PATH`, so errors name it that way.

use crate::scenario::ScenarioError;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The prefix of a path read from the bundle.
pub const PREFIX: &str = "bundled:";

/// The scenario `ballast simulate` runs without an argument.
pub const DEFAULT_SCENARIO: &str = "api-daily";

/// One bundled file: its path under `simulations/` and its text, compiled in.
macro_rules! bundled {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../simulations/",
                $path
            )),
        )
    };
}

/// Every bundled file: its path under `simulations/` and its text.
pub const FILES: &[(&str, &str)] = &[
    bundled!("api-daily.yaml"),
    bundled!("api-predictive.yaml"),
    bundled!("api-predictive-flash.yaml"),
    bundled!("api-predictive-ramp.yaml"),
    bundled!("batch-burst.yaml"),
    bundled!("openb.yaml"),
    bundled!("vertical-apply.yaml"),
    bundled!("vertical-week.yaml"),
    bundled!("week-mix.yaml"),
    bundled!("catalogs/aws-like.yaml"),
    bundled!("objects/batch-pool.yaml"),
    bundled!("objects/general-pool.yaml"),
    bundled!("objects/openb-pool.yaml"),
    bundled!("objects/seed-api.yaml"),
    bundled!("objects/seed-spot-general.yaml"),
    bundled!("objects/vertical-apply.yaml"),
    bundled!("objects/vertical-week.yaml"),
    bundled!("objects/week-services.yaml"),
    bundled!("objects/worker-scaledobject.yaml"),
    bundled!("traces/morning-ramp.csv"),
];

/// A bundled scenario: its name (the file name without `.yaml`) and the `description` it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundledScenario {
    pub name: &'static str,
    pub description: String,
}

/// The bundled scenarios (the `.yaml` files at the top of `simulations/`), by name.
pub fn scenarios() -> Vec<BundledScenario> {
    let mut out: Vec<BundledScenario> = FILES
        .iter()
        .filter(|(path, _)| !path.contains('/'))
        .filter_map(|(path, text)| {
            let name = path.strip_suffix(".yaml")?;
            Some(BundledScenario {
                name,
                description: description_of(text),
            })
        })
        .collect();
    out.sort_by_key(|s| s.name);
    out
}

/// The `description:` line of a scenario's text (empty when it has none).
fn description_of(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        description: String,
    }
    serde_yaml::from_str::<Head>(text)
        .map(|h| h.description)
        .unwrap_or_default()
}

/// The path (`bundled:NAME.yaml`) of the bundled scenario `name`; `None` when there is none of
/// that name.
pub fn scenario_path(name: &str) -> Option<PathBuf> {
    let file = format!("{name}.yaml");
    FILES
        .iter()
        .any(|(path, _)| *path == file && !name.contains('/'))
        .then(|| PathBuf::from(format!("{PREFIX}{file}")))
}

/// Whether `path` is read from the bundle.
pub fn is_bundled(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with(PREFIX))
}

/// Where `written`, a path as the scenario at `scenario` gives it, is read from: a `bundled:`
/// path as written, a relative path of a bundled scenario within the bundle, anything else
/// against the scenario file's folder on disk.
pub fn resolve(scenario: &Path, written: &str) -> PathBuf {
    if written.starts_with(PREFIX) {
        return PathBuf::from(written);
    }
    match scenario.to_str().and_then(|p| p.strip_prefix(PREFIX)) {
        Some(inside) => {
            let folder = Path::new(inside).parent().unwrap_or(Path::new(""));
            PathBuf::from(format!("{PREFIX}{}", folder.join(written).display()))
        }
        None => scenario
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
            .join(written),
    }
}

/// The text of the file at `path` (on disk, or in the bundle).
pub fn read(path: &Path) -> Result<String, ScenarioError> {
    match bundled_text(path)? {
        Some(text) => Ok(text.to_string()),
        None => std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// A reader of the file at `path` (on disk, or in the bundle), for files read as a stream.
pub fn open(path: &Path) -> Result<Box<dyn Read>, ScenarioError> {
    match bundled_text(path)? {
        Some(text) => Ok(Box::new(text.as_bytes())),
        None => std::fs::File::open(path)
            .map(|f| Box::new(std::io::BufReader::new(f)) as Box<dyn Read>)
            .map_err(|source| ScenarioError::Read {
                path: path.display().to_string(),
                source,
            }),
    }
}

/// `None` for a path on disk; the bundled file's text for a `bundled:` path; an error naming
/// the path and the bundled files when the bundle has no such file.
fn bundled_text(path: &Path) -> Result<Option<&'static str>, ScenarioError> {
    let Some(inside) = path.to_str().and_then(|p| p.strip_prefix(PREFIX)) else {
        return Ok(None);
    };
    let wanted = normalize(inside);
    let catalog = format!("catalogs/{inside}.yaml");
    let found = FILES
        .iter()
        .find(|(p, _)| Some(*p) == wanted.as_deref() || *p == catalog);
    match found {
        Some((_, text)) => Ok(Some(text)),
        None => Err(ScenarioError::invalid(
            path,
            "(path)",
            format!(
                "no such bundled file (a path outside `simulations/`, such as a data set, is \
                 not bundled: run the scenario from its file with the data beside it); bundled: \
                 {}",
                FILES.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// `a/./b/../c` as `a/c`; `None` when the path climbs out of the bundle or is absolute.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn paths_resolve_on_disk_or_in_the_bundle() {
        let cases = [
            ("dir/s.yaml", "catalogs/c.yaml", "dir/catalogs/c.yaml"),
            ("s.yaml", "c.yaml", "c.yaml"),
            ("dir/s.yaml", "bundled:aws-like", "bundled:aws-like"),
            (
                "bundled:api-daily.yaml",
                "objects/a.yaml",
                "bundled:objects/a.yaml",
            ),
            ("bundled:x/s.yaml", "../t.csv", "bundled:x/../t.csv"),
        ];
        for (scenario, written, want) in cases {
            assert_eq!(
                resolve(Path::new(scenario), written),
                PathBuf::from(want),
                "{scenario} + {written}"
            );
        }
    }

    #[test]
    fn bundled_paths_read_or_say_what_is_bundled() {
        let read_ok = |p: &str| read(Path::new(p)).map(|t| t.len());
        assert!(read_ok("bundled:catalogs/aws-like.yaml").unwrap() > 1000);
        assert_eq!(
            read_ok("bundled:aws-like").unwrap(),
            read_ok("bundled:catalogs/aws-like.yaml").unwrap()
        );
        assert_eq!(
            read_ok("bundled:objects/../catalogs/./aws-like.yaml").unwrap(),
            read_ok("bundled:aws-like").unwrap()
        );
        for missing in ["bundled:nope.yaml", "bundled:../../shared/data/x.csv"] {
            let e = read(Path::new(missing)).unwrap_err().to_string();
            assert!(
                e.starts_with(missing) && e.contains("catalogs/aws-like.yaml"),
                "{e}"
            );
        }
    }

    #[test]
    fn normalize_stays_inside_the_bundle() {
        assert_eq!(normalize("a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("../a"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }

    /// A scenario added to `simulations/` without a line in `FILES` would not be bundled.
    #[test]
    fn every_scenario_of_the_source_tree_is_bundled() {
        let dir = repo().join("simulations");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "bench.yaml" && n != "inline-test.yaml")
            .collect();
        on_disk.sort();
        let mut bundled: Vec<String> = scenarios()
            .iter()
            .map(|s| format!("{}.yaml", s.name))
            .collect();
        bundled.sort();
        assert_eq!(bundled, on_disk);
        for s in scenarios() {
            assert!(!s.description.is_empty(), "{} has no description", s.name);
        }
        assert!(scenario_path(DEFAULT_SCENARIO).is_some());
        assert_eq!(scenario_path("catalogs/aws-like"), None);
        assert_eq!(scenario_path("nope"), None);
    }

    /// Every bundled scenario but openb (its data set lies outside the project) loads from the
    /// bundle alone, and the same as from its file.
    #[test]
    fn bundled_scenarios_load_from_the_bundle() {
        for s in scenarios() {
            let path = scenario_path(s.name).unwrap();
            let loaded = crate::scenario::load(&path);
            if s.name == "openb" {
                let e = loaded.unwrap_err().to_string();
                assert!(e.contains("bundled:../../shared/data"), "{e}");
                continue;
            }
            let from_bundle = loaded.unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let from_disk =
                crate::scenario::load(&repo().join(format!("simulations/{}.yaml", s.name)))
                    .unwrap();
            assert_eq!(from_bundle.len(), from_disk.len());
            for (b, d) in from_bundle.iter().zip(&from_disk) {
                assert_eq!(b.catalog, d.catalog, "{}", s.name);
                assert_eq!(b.traces, d.traces, "{}", s.name);
                assert_eq!(b.node_pools.len(), d.node_pools.len(), "{}", s.name);
            }
        }
    }
}
