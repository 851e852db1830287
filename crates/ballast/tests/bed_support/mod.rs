//! Helpers shared by the bed tests that run `ballast` processes under the chart's own identities
//! (`rbac/`, `credentials_log.rs`): a controller process with its whole output kept in a file,
//! the chart rendered by the cached Helm and applied, a ServiceAccount token from the TokenRequest
//! API and a kubeconfig holding it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use ballast_testbed::TestBed;
use ballast_testbed::wait::poll_until;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use serde::Deserialize as _;
use serde_json::json;

/// The repository's root (processes run there: relative catalog paths).
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// One `ballast` process; its stdout and stderr both go to one log file, read whole by
/// [`Process::output`]. Killed when dropped.
pub struct Process {
    pub name: String,
    child: Child,
    pub port: u16,
    log: PathBuf,
}

/// A free port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Process {
    /// `ballast ARGS... ADDR`, ADDR `127.0.0.1:PORT` of a free port, with `KUBECONFIG=kubeconfig`
    /// and `RUST_LOG=rust_log`; output in `logs/NAME.log`.
    pub fn start(
        name: &str,
        args: &[&str],
        kubeconfig: &Path,
        rust_log: &str,
        logs: &Path,
    ) -> Result<Process> {
        let port = free_port()?;
        let log = logs.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(args)
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(root())
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", rust_log)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting ballast")?;
        Ok(Process {
            name: name.to_owned(),
            child,
            port,
            log,
        })
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let ready = poll_until(
            &format!("{} /readyz", self.name),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || async {
                let ok = ballast_testbed::http_client()
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                Ok(ok.then_some(()))
            },
        )
        .await;
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}\n{}", self.name, self.tail(40));
        }
        ready.with_context(|| self.tail(40))
    }

    /// Everything the process wrote so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of its output, headed by its name.
    pub fn tail(&self, n: usize) -> String {
        let text = self.output();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(n);
        format!("--- {} log ---\n{}", self.name, lines[from..].join("\n"))
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cached Helm binary of `tests/testbed.sh build` (the version in tests/testbed/versions.env).
pub fn helm() -> Result<PathBuf> {
    let versions = std::fs::read_to_string(root().join("tests/testbed/versions.env"))?;
    let version = versions
        .lines()
        .find_map(|l| l.strip_prefix("HELM_VERSION="))
        .context("HELM_VERSION in versions.env")?;
    let cache = std::env::var_os("BALLAST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ballast")))
        .context("neither BALLAST_CACHE nor HOME is set")?;
    let helm = cache.join(format!("bin/helm-{version}/helm"));
    ensure!(
        helm.is_file(),
        "{} missing: run tests/testbed.sh build",
        helm.display()
    );
    Ok(helm)
}

/// `helm template RELEASE deploy/helm/ballast -n NAMESPACE --set ...`: the rendered objects.
pub fn render_chart(release: &str, namespace: &str, sets: &[&str]) -> Result<Vec<DynamicObject>> {
    let mut cmd = Command::new(helm()?);
    cmd.args(["template", release, "deploy/helm/ballast", "-n", namespace])
        .current_dir(root());
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().context("running helm template")?;
    ensure!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if !value.is_null() {
            objects.push(serde_yaml::from_value::<DynamicObject>(value)?);
        }
    }
    Ok(objects)
}

fn gvk(o: &DynamicObject) -> Result<GroupVersionKind> {
    let types = o.types.as_ref().context("an object without apiVersion")?;
    Ok(GroupVersionKind::try_from(types)?)
}

/// Server-side applies `objects` (as admin); returns what was applied, for [`delete_all`].
pub async fn apply_all(client: &Client, objects: &[DynamicObject]) -> Result<Vec<DynamicObject>> {
    let pp = PatchParams::apply("ballast-rbac-test").force();
    for o in objects {
        let (ar, caps) = pinned_kind(client, &gvk(o)?).await?;
        let name = o
            .metadata
            .name
            .as_deref()
            .context("an object without name")?;
        let api: Api<DynamicObject> = match (&caps.scope, o.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => bail!("{} {name} without namespace", ar.kind),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        api.patch(name, &pp, &Patch::Apply(o))
            .await
            .with_context(|| format!("applying {} {name}", ar.kind))?;
    }
    Ok(objects.to_vec())
}

/// Deletes what [`apply_all`] applied (errors ignored: best effort at the end of a test).
pub async fn delete_all(client: &Client, objects: &[DynamicObject]) {
    for o in objects.iter().rev() {
        let (Ok(gvk), Some(name)) = (gvk(o), o.metadata.name.as_deref()) else {
            continue;
        };
        let Ok((ar, caps)) = pinned_kind(client, &gvk).await else {
            continue;
        };
        let api: Api<DynamicObject> = match (&caps.scope, o.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => continue,
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        let _ = api.delete(name, &DeleteParams::background()).await;
    }
}

/// A token of ServiceAccount `namespace/name` from the TokenRequest API (one hour).
pub async fn token(client: &Client, namespace: &str, name: &str) -> Result<String> {
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": { "audiences": [], "expirationSeconds": 3600 }
    }))?;
    let got = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for {namespace}/{name}"))?;
    Ok(got.status.context("TokenRequest without status")?.token)
}

/// A kubeconfig file `dir/NAME.kubeconfig` for the bed's API server (its URL and CA from the bed's
/// own kubeconfig) that authenticates with `token`; and a client reading it.
pub async fn token_kubeconfig(
    bed: &TestBed,
    dir: &Path,
    name: &str,
    token: &str,
) -> Result<(PathBuf, Client)> {
    let admin = bed
        .env()
        .get("BALLAST_KUBECONFIG")
        .context("BALLAST_KUBECONFIG")?;
    let admin = Kubeconfig::read_from(admin)?;
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .context("a cluster in the bed's kubeconfig")?;
    let server = cluster.server.context("the bed's server URL")?;
    let ca = cluster
        .certificate_authority_data
        .context("the bed's certificate-authority-data")?;
    let text = serde_yaml::to_string(&json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "bed", "cluster": { "server": server, "certificate-authority-data": ca } }],
        "users": [{ "name": name, "user": { "token": token } }],
        "contexts": [{ "name": name, "context": { "cluster": "bed", "user": name } }],
        "current-context": name,
    }))?;
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, &text)?;
    let kubeconfig = Kubeconfig::from_yaml(&text)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.proxy_url = None;
    Ok((path, Client::try_from(config)?))
}
