//! `ballast explain provision|disruption`: a node snapshot, from a file (`-f`) or captured from
//! the cluster as the nodes controller would build it (`--live`), decided by the core and
//! printed with its reasons.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use ballast_controller::nodes::capture::{Pass, Scope, capture};
use ballast_nodes::{
    ClusterSnapshot, Destination, DisruptionDecision, DisruptionOptions, ProvisionOptions,
    ProvisioningDecision, Verdict,
};
use jiff::Timestamp;
use serde::Serialize;

use crate::cli::Format;
use crate::nodes_cmd::{NodesDecisionFlags, Provider, check_provider, kwok_provider};
use crate::strict;

/// A snapshot file: a `ClusterSnapshot` plus the decision time and optional knobs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotFile {
    /// The decision time: required, nothing else gives the time.
    now: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    provision_options: Option<ProvisionOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disruption_options: Option<DisruptionOptions>,
    #[serde(flatten)]
    snapshot: ClusterSnapshot,
}

impl SnapshotFile {
    /// The file as YAML that [`read_snapshot`] reads back to the same decision.
    fn to_yaml(&self) -> Result<String> {
        ballast_api::yaml::to_string(self).context("encoding the snapshot")
    }
}

/// Reads a node snapshot strictly: an empty file, a file of another kind, a missing `now` or a
/// field the format does not have is an error naming it.
fn read_snapshot(text: &str) -> Result<SnapshotFile> {
    const WHAT: &str = "node snapshot";
    let mut map = strict::mapping(
        text,
        "a node snapshot (see docs/nodes.md, \"The snapshot\")",
    )?;
    strict::known_keys::<ClusterSnapshot>(
        &map,
        &["now", "provisionOptions", "disruptionOptions"],
        WHAT,
    )?;
    let Some(now) = map.remove("now") else {
        bail!(
            "{WHAT}: now: missing: the decision time (RFC 3339, e.g. \"2025-06-01T12:00:00Z\"); nothing else gives it"
        )
    };
    let now = strict::typed(now, "now", WHAT)?;
    let provision_options = map
        .remove("provisionOptions")
        .map(|v| strict::typed(v, "provisionOptions", WHAT))
        .transpose()?;
    let disruption_options = map
        .remove("disruptionOptions")
        .map(|v| strict::typed(v, "disruptionOptions", WHAT))
        .transpose()?;
    let snapshot = strict::typed(serde_json::Value::Object(map), "", WHAT)?;
    Ok(SnapshotFile {
        now,
        provision_options,
        disruption_options,
        snapshot,
    })
}

/// `ballast explain provision|disruption -f SNAPSHOT [-o json|yaml]`.
pub fn explain_file(pass: Pass, text: &str, output: Option<Format>) -> Result<ExitCode> {
    let f = read_snapshot(text)?;
    print_decision(pass, &f, output)
}

/// `ballast explain provision|disruption --live [POOL] [--save-snapshot FILE] [-o json|yaml]`:
/// captures the snapshot the provisioner (or the disruption pass) would decide on now, from the
/// current kubeconfig and the provider `flags` name, scoped to NodePool `pool` when given,
/// optionally saves it (YAML, which `-f` reads to the same output) and explains it.
pub fn explain_live(
    pass: Pass,
    pool: Option<&str>,
    flags: &NodesDecisionFlags,
    save: Option<&Path>,
    output: Option<Format>,
) -> Result<ExitCode> {
    check_provider(flags)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scope = Scope {
        pool,
        ..flags.scope()
    };
    let now = Timestamp::now();
    let snapshot = crate::horizontal_cmd::runtime(1)?.block_on(async {
        let client = crate::kubeconfig::client().await?;
        capture_with(flags, &client, scope, pass, now).await
    })?;
    let file = SnapshotFile {
        now,
        provision_options: (pass == Pass::Provisioning).then(|| flags.provision_options()),
        disruption_options: (pass == Pass::Disruption).then(|| flags.disruption_options()),
        snapshot,
    };
    if let Some(path) = save {
        std::fs::write(path, file.to_yaml()?)
            .with_context(|| format!("writing the snapshot to {}", path.display()))?;
        eprintln!("saved the snapshot to {}", path.display());
    }
    print_decision(pass, &file, output)
}

/// The capture with the provider of `flags`.
async fn capture_with(
    flags: &NodesDecisionFlags,
    client: &kube::Client,
    scope: Scope<'_>,
    pass: Pass,
    now: Timestamp,
) -> Result<ClusterSnapshot> {
    match flags.provider {
        Provider::Kwok => {
            let provider = kwok_provider(flags, client.clone())?;
            Ok(capture(client, &provider, scope, pass, now).await?)
        }
        #[cfg(feature = "aws")]
        Provider::Aws => {
            let provider = crate::nodes_cmd::aws_provider(flags, client.clone())?;
            Ok(capture(client, &provider, scope, pass, now).await?)
        }
        #[cfg(not(feature = "aws"))]
        Provider::Aws => bail!(
            "--provider aws: this ballast was built without the AWS provider (--features aws)"
        ),
    }
}

/// Runs `pass` on the file's snapshot and prints the decision: in words, or JSON or YAML.
/// A disruption pass evaluates every method and candidate (`explainAll`), so each node says why
/// it stays; the action chosen is the same.
fn print_decision(pass: Pass, f: &SnapshotFile, output: Option<Format>) -> Result<ExitCode> {
    let now = f.now;
    match pass {
        Pass::Provisioning => {
            let opts = f.provision_options.clone().unwrap_or_default();
            let d = ballast_nodes::provision(&f.snapshot, now, &opts)?;
            match output {
                None => print!("{}", render_provision(&d, now)),
                Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&d)?),
                Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&d)?),
            }
        }
        Pass::Disruption => {
            let mut opts = f.disruption_options.clone().unwrap_or_default();
            opts.explain_all = true;
            let d = ballast_nodes::disrupt(&f.snapshot, now, &opts)?;
            match output {
                None => print!("{}", render_disruption(&d, now)),
                Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&d)?),
                Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&d)?),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `-0.00` reads oddly.
fn z(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x }
}

fn list<T: std::fmt::Display>(items: &[T], max: usize) -> String {
    let mut s: Vec<String> = items.iter().take(max).map(|x| x.to_string()).collect();
    if items.len() > max {
        s.push(format!("… (+{} more)", items.len() - max));
    }
    s.join(", ")
}

/// The human form of a provisioning decision.
pub fn render_provision(d: &ProvisioningDecision, now: Timestamp) -> String {
    let mut o = String::new();
    let placed = d.placements.len();
    let _ = writeln!(
        o,
        "Provisioning at {now}: {} new NodeClaim(s) at ${:.4}/h; {placed} pod(s) placed, {} stay pending",
        d.node_claims.len(),
        d.cost_per_hour,
        d.unschedulable.len()
    );
    if !d.node_claims.is_empty() {
        let _ = writeln!(o, "\nNodeClaims to create:");
        for p in &d.node_claims {
            let _ = writeln!(
                o,
                "  {}  NodePool {}  {} {} {}  ${:.4}/h  {} pod(s), requests {}",
                p.name,
                p.node_pool,
                p.instance_type,
                p.zone,
                p.capacity_type,
                p.price,
                p.pods.len(),
                serde_json::to_string(&p.requests)
                    .unwrap_or_default()
                    .replace('"', "")
            );
            let types: Vec<String> = p
                .instance_types
                .iter()
                .map(|t| format!("{} ${:.4}", t.name, t.price))
                .collect();
            let _ = writeln!(
                o,
                "      may launch as (cheapest first): {}",
                list(&types, 8)
            );
            let _ = writeln!(
                o,
                "      zones: {}; capacity types: {}",
                p.zones.join(", "),
                p.capacity_types.join(", ")
            );
            let _ = writeln!(o, "      pods: {}", list(&p.pods, 10));
        }
    }
    let existing: Vec<String> = d
        .placements
        .iter()
        .filter_map(|pl| match &pl.to {
            Destination::Node(n) => Some(format!("{} → node {n}", pl.pod)),
            Destination::InFlight(n) => Some(format!("{} → NodeClaim in flight {n}", pl.pod)),
            Destination::NewNodeClaim(_) => None,
        })
        .collect();
    if !existing.is_empty() {
        let _ = writeln!(o, "\nPods that fit existing or in-flight capacity:");
        for e in existing {
            let _ = writeln!(o, "  {e}");
        }
    }
    if !d.unschedulable.is_empty() {
        let _ = writeln!(o, "\nPods that stay pending:");
        for u in &d.unschedulable {
            let _ = writeln!(o, "  {}  [{:?}]", u.pod, u.category);
            for (pool, why) in &u.node_pools {
                let _ = writeln!(o, "      NodePool {pool}: {why}");
            }
            for (why, n) in &u.nodes {
                let _ = writeln!(o, "      {n} node(s): {why}");
            }
            if u.node_pools.is_empty() && u.nodes.is_empty() {
                let _ = writeln!(o, "      {}", u.message);
            }
        }
    }
    if !d.relaxed.is_empty() {
        let _ = writeln!(o, "\nPreferences dropped to place a pod:");
        for r in &d.relaxed {
            let _ = writeln!(o, "  {}: {}", r.pod, r.dropped.join("; "));
        }
    }
    if !d.skipped.is_empty() {
        let _ = writeln!(o, "\nLeft out (invalid):");
        for e in &d.skipped {
            let _ = writeln!(o, "  {e}");
        }
    }
    o
}

/// The human form of a disruption decision.
pub fn render_disruption(d: &DisruptionDecision, now: Timestamp) -> String {
    let mut o = String::new();
    // The core formats a zero cost of an empty node as "-0.00".
    let _ = writeln!(
        o,
        "Disruption at {now}: {}",
        d.summary.replace("cost -0.00", "cost 0.00")
    );
    if let Some(a) = &d.action {
        let _ = writeln!(o, "\nAction: {} of {}", a.method, a.nodes.join(", "));
        let _ = writeln!(o, "  why: {}", a.why);
        let _ = writeln!(
            o,
            "  removes ${:.4}/h, saves ${:.4}/h, disruption cost {:.2}, evicts {} pod(s)",
            a.removed_price,
            a.savings,
            z(a.disruption_cost),
            a.pods_evicted.len()
        );
        for r in &a.replacements {
            let _ = writeln!(
                o,
                "  replacement {}: {} {} {} ${:.4}/h (NodePool {})",
                r.plan.name,
                r.plan.instance_type,
                r.plan.zone,
                r.plan.capacity_type,
                r.plan.price,
                r.plan.node_pool
            );
        }
        for m in &a.moves {
            let to = if m.to_replacement {
                "replacement "
            } else {
                "node "
            };
            let _ = writeln!(o, "  {} → {to}{}", m.pod, m.to);
        }
        if let Some(t) = a.drain_deadline {
            let _ = writeln!(o, "  drain deadline (terminationGracePeriod): {t}");
        }
    }
    let _ = writeln!(o, "\nMethods:");
    for (m, line) in &d.methods {
        let _ = writeln!(o, "  {m}: {line}");
    }
    let _ = writeln!(o, "\nNodes:");
    for n in &d.nodes {
        let chosen = d.action.as_ref().is_some_and(|a| a.nodes.contains(&n.node));
        let price = n
            .price
            .map(|p| format!("${p:.4}/h"))
            .unwrap_or_else(|| "price unknown".into());
        let _ = writeln!(
            o,
            "  {}{}  NodePool {}  {price}  disruption cost {:.2}",
            n.node,
            if chosen { " (chosen)" } else { "" },
            n.node_pool.as_deref().unwrap_or("-"),
            z(n.disruption_cost)
        );
        for note in &n.notes {
            let method = note
                .method
                .map(|m| m.to_string())
                .unwrap_or_else(|| "all methods".into());
            let verdict = match note.verdict {
                Verdict::Chosen => "chosen",
                Verdict::Possible => "possible",
                Verdict::Rejected => "no",
            };
            let _ = writeln!(o, "      {method}: {verdict}: {}", note.why);
        }
    }
    if !d.budgets.is_empty() {
        let _ = writeln!(o, "\nBudgets:");
        for b in &d.budgets {
            let allowed = b
                .allowed
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unlimited".into());
            let _ = writeln!(
                o,
                "  NodePool {} {:?}: {} node(s), {allowed} allowed ({}), {} disrupting, {} left",
                b.node_pool, b.reason, b.nodes, b.budget, b.disrupting, b.available
            );
        }
    }
    if !d.skipped.is_empty() {
        let _ = writeln!(o, "\nLeft out (invalid):");
        for e in &d.skipped {
            let _ = writeln!(o, "  {e}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../nodes/examples")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn saved_snapshots_read_back_to_the_same_decision() {
        for (name, pass) in [
            ("provision.yaml", Pass::Provisioning),
            ("disruption.yaml", Pass::Disruption),
        ] {
            let read = read_snapshot(&example(name)).unwrap();
            let again = read_snapshot(&read.to_yaml().unwrap()).unwrap();
            assert_eq!(again.now, read.now, "{name}");
            let rendered = |f: &SnapshotFile| match pass {
                Pass::Provisioning => {
                    let opts = f.provision_options.clone().unwrap_or_default();
                    let d = ballast_nodes::provision(&f.snapshot, f.now, &opts).unwrap();
                    render_provision(&d, f.now)
                }
                Pass::Disruption => {
                    let mut opts = f.disruption_options.clone().unwrap_or_default();
                    opts.explain_all = true;
                    let d = ballast_nodes::disrupt(&f.snapshot, f.now, &opts).unwrap();
                    render_disruption(&d, f.now)
                }
            };
            assert_eq!(rendered(&again), rendered(&read), "{name}");
        }
    }

    #[test]
    fn provision_example_explains_claims_and_pending_pods() {
        let f = read_snapshot(&example("provision.yaml")).unwrap();
        let now = f.now;
        let d = ballast_nodes::provision(&f.snapshot, now, &ProvisionOptions::default()).unwrap();
        let text = render_provision(&d, now);
        assert!(text.contains("NodeClaims to create:"), "{text}");
        assert!(text.contains("may launch as (cheapest first)"), "{text}");
        assert!(text.contains("shop/api-2 → node general-1"), "{text}");
        assert!(text.contains("ml/train-2  [LimitsReached]"), "{text}");
        assert!(
            text.contains("NodePool gpu: NodePool limits reached (nodes)"),
            "{text}"
        );
        assert!(
            text.contains("shop/arm-1  [UnsatisfiableRequirements]"),
            "{text}"
        );
        // Zone spread: the three web pods end up in both zones.
        let zones: std::collections::BTreeSet<&str> =
            d.node_claims.iter().map(|c| c.zone.as_str()).collect();
        assert_eq!(zones.len(), 2, "{text}");
        let json = serde_json::to_value(&d).unwrap();
        assert!(json["nodeClaims"][0]["nodeClaim"]["metadata"]["name"].is_string());
        assert_eq!(json["unschedulable"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn disruption_example_explains_every_node() {
        let f = read_snapshot(&example("disruption.yaml")).unwrap();
        let now = f.now;
        let opts = DisruptionOptions {
            explain_all: true,
            ..Default::default()
        };
        let d = ballast_nodes::disrupt(&f.snapshot, now, &opts).unwrap();
        let text = render_disruption(&d, now);
        assert!(text.contains("Action: emptiness of empty-1"), "{text}");
        assert!(
            text.contains("big-1") && text.contains("can be deleted, its pods fit elsewhere"),
            "{text}"
        );
        assert!(
            text.contains("pod batch/job-1 has the do-not-disrupt annotation"),
            "{text}"
        );
        assert!(
            text.contains("PDB shop/db allows no disruption of pod shop/db-1 now"),
            "{text}"
        );
        assert!(text.contains("consolidateAfter not reached"), "{text}");
        assert!(!text.contains("-0.00"), "{text}");
    }

    #[test]
    fn snapshot_files_are_read_strictly() {
        let f = read_snapshot("now: 2025-06-01T12:00:00Z\nnodes: []\npendingPods: []\n").unwrap();
        assert!(f.provision_options.is_none() && f.disruption_options.is_none());
        let refused = [
            ("", "the file is empty"),
            ("nodes: []\n", "now: missing"),
            ("now: 2025-06-01T12:00:00Z\nnodes: 3", "nodes: invalid type"),
            (
                "now: 2025-06-01T12:00:00Z\nnodePoolz: []",
                "did you mean `nodePools`",
            ),
            ("now: yesterday\n", "now: "),
            (
                "now: 2025-06-01T12:00:00Z\nautoscaler: {}",
                "unknown field `autoscaler`",
            ),
            (
                "apiVersion: v1\nkind: Pod\n",
                "this is a Kubernetes object (v1 Pod)",
            ),
            (
                "now: 2025-06-01T12:00:00Z\nprovisionOptions: {maxNodeClaimz: 3}",
                "unknown field `provisionOptions.maxNodeClaimz`",
            ),
        ];
        for (text, fragment) in refused {
            let e = format!(
                "{:#}",
                read_snapshot(text)
                    .err()
                    .unwrap_or_else(|| panic!("{text:?} was accepted"))
            );
            assert!(e.contains(fragment), "{text:?}: {e}");
        }
    }
}
