//! The API client of the current kubeconfig (`KUBECONFIG`, `~/.kube/config`, or the pod's
//! service account), with an error a user can act on when there is none.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

/// A client for the cluster of the current kubeconfig. Errs saying which kubeconfig is missing
/// when none can be found, else with the loader's own error.
pub async fn client() -> Result<kube::Client> {
    kube::Client::try_default().await.map_err(|e| {
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
        let looked = Looked {
            kubeconfig: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            home_config: home.filter(|p| p.exists()),
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        };
        anyhow!("{}", failure(&looked, &e.to_string(), |p| p.exists()))
    })
}

/// Where a kubeconfig was looked for.
struct Looked {
    /// `KUBECONFIG`, when set and not empty.
    kubeconfig: Option<OsString>,
    /// `~/.kube/config`, when it exists.
    home_config: Option<PathBuf>,
    /// Whether this runs in a pod (`KUBERNETES_SERVICE_HOST` set).
    in_cluster: bool,
}

/// Why no client could be made: no kubeconfig at all, the files `KUBECONFIG` names missing, or
/// the loader's `error` about one that exists.
fn failure(looked: &Looked, error: &str, exists: impl Fn(&Path) -> bool) -> String {
    if let Some(var) = &looked.kubeconfig {
        let paths: Vec<PathBuf> = std::env::split_paths(var).collect();
        if !paths.iter().any(|p| exists(p)) {
            let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return format!(
                "no kubeconfig: KUBECONFIG names {}, which does not exist",
                named.join(", ")
            );
        }
    } else if looked.home_config.is_none() && !looked.in_cluster {
        return "no kubeconfig: KUBECONFIG is not set, ~/.kube/config does not exist, and this is not a pod (no KUBERNETES_SERVICE_HOST)".to_string();
    }
    format!("loading the kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster): {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kubeconfig_is_named() {
        let looked = |var: Option<&str>, home: bool, pod: bool| Looked {
            kubeconfig: var.map(OsString::from),
            home_config: home.then(|| PathBuf::from("/root/.kube/config")),
            in_cluster: pod,
        };
        let only_real = |p: &Path| p == Path::new("/etc/real");
        let e = failure(&looked(Some("/tmp/absent"), true, false), "x", only_real);
        assert_eq!(
            e,
            "no kubeconfig: KUBECONFIG names /tmp/absent, which does not exist"
        );
        let e = failure(&looked(None, false, false), "x", only_real);
        assert!(e.starts_with("no kubeconfig: KUBECONFIG is not set"), "{e}");
        for (var, home, pod) in [
            (Some("/etc/real"), false, false),
            (Some("/tmp/absent:/etc/real"), false, false),
            (None, true, false),
            (None, false, true),
        ] {
            let e = failure(&looked(var, home, pod), "bad YAML", only_real);
            assert!(
                e.starts_with("loading the kubeconfig") && e.ends_with("bad YAML"),
                "{e}"
            );
        }
    }
}
