//! Where an object's demand history survives a restart: a ConfigMap in its namespace, owned by
//! the `HorizontalAutoscaler` (garbage collected with it), written with server-side apply.
//!
//! ```yaml
//! metadata: { name: <autoscaler>-demand-history, ownerReferences: [the autoscaler] }
//! data: { format: f32le, stepSeconds: "60", start: "2026-12-07T10:00:00Z" }
//! binaryData: { values: <little-endian f32, one per step from start> }
//! ```
//!
//! At most [`MAX_STORED_VALUES`] values (800 kB, under the 1 MiB of a ConfigMap): a longer
//! history keeps its newest steps. Reading one that is malformed is an error naming the
//! ConfigMap and the key; the caller reports it and starts from nothing.

use std::collections::BTreeMap;

use ballast_api::horizontal::HorizontalAutoscaler;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::ring::DemandRing;

/// The most values stored (4 bytes each).
pub const MAX_STORED_VALUES: usize = 200_000;
/// `data.format` of the encoding written.
pub const FORMAT: &str = "f32le";
const SUFFIX: &str = "-demand-history";
/// Longest name of an object (a DNS subdomain).
const MAX_NAME: usize = 253;

/// The ConfigMap name of `autoscaler`'s history: `<name>-demand-history`, a long name cut and
/// told apart by a hash of the whole name.
pub fn config_map_name(autoscaler: &str) -> String {
    if autoscaler.len() + SUFFIX.len() <= MAX_NAME {
        return format!("{autoscaler}{SUFFIX}");
    }
    // FNV-1a: stable across builds and processes.
    let hash = autoscaler.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let keep = MAX_NAME - SUFFIX.len() - 9;
    let cut: String = autoscaler.chars().take(keep).collect();
    format!(
        "{}-{:08x}{SUFFIX}",
        cut.trim_end_matches(['-', '.']),
        hash as u32
    )
}

/// The ConfigMap holding `ring` for `hza`.
pub fn to_config_map(hza: &HorizontalAutoscaler, ring: &DemandRing) -> ConfigMap {
    let (start, bytes) = ring.encode(MAX_STORED_VALUES);
    let start = Timestamp::from_millisecond(start).unwrap_or(Timestamp::UNIX_EPOCH);
    let owner = hza.controller_owner_ref(&()).map(|mut owner| {
        // Blocking the owner's deletion would need the autoscalers' finalizers: not asked for.
        owner.block_owner_deletion = None;
        vec![owner]
    });
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&hza.name_any())),
            namespace: hza.namespace(),
            owner_references: owner,
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "ballast".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("format".to_owned(), FORMAT.to_owned()),
            (
                "stepSeconds".to_owned(),
                (ring.step_millis() / 1000).to_string(),
            ),
            ("start".to_owned(), start.to_string()),
        ])),
        binary_data: Some(BTreeMap::from([("values".to_owned(), ByteString(bytes))])),
        ..ConfigMap::default()
    }
}

/// The history stored in `cm`, in a ring of `capacity`; an error names the ConfigMap and key.
pub fn from_config_map(cm: &ConfigMap, capacity: usize) -> Result<DemandRing, String> {
    let name = format!(
        "ConfigMap {}/{}",
        cm.namespace().unwrap_or_default(),
        cm.name_any()
    );
    let data = cm.data.as_ref();
    let text = |key: &str| {
        data.and_then(|d| d.get(key))
            .map(String::as_str)
            .ok_or_else(|| format!("{name}: key {key} is missing"))
    };
    let format = text("format")?;
    if format != FORMAT {
        return Err(format!(
            "{name}: key format is {format:?}, this controller reads {FORMAT:?}"
        ));
    }
    let step: i64 = text("stepSeconds")?
        .trim()
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{name}: key stepSeconds is not a positive whole number"))?;
    let start: Timestamp = text("start")?
        .trim()
        .parse()
        .map_err(|e| format!("{name}: key start is not an RFC 3339 time: {e}"))?;
    let bytes = cm
        .binary_data
        .as_ref()
        .and_then(|b| b.get("values"))
        .ok_or_else(|| format!("{name}: key values (binaryData) is missing"))?;
    DemandRing::decode(step * 1000, capacity, start.as_millisecond(), &bytes.0)
        .map_err(|e| format!("{name}: key values: {e}"))
}

/// Reads `hza`'s stored history: `Ok(None)` when there is none (or it belongs to an earlier
/// object of the same name), `Err` with a message naming the ConfigMap when it cannot be read.
pub async fn load(
    client: &Client,
    hza: &HorizontalAutoscaler,
    capacity: usize,
) -> Result<Option<DemandRing>, String> {
    let ns = hza.namespace().unwrap_or_default();
    let name = config_map_name(&hza.name_any());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = match api.get_opt(&name).await {
        Ok(Some(cm)) => cm,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("reading ConfigMap {ns}/{name}: {e}")),
    };
    let uid = hza.uid();
    let ours = cm
        .owner_references()
        .iter()
        .any(|owner| Some(&owner.uid) == uid.as_ref());
    if !ours {
        return Ok(None);
    }
    from_config_map(&cm, capacity).map(Some)
}

/// Writes `ring` as `hza`'s stored history (server-side apply, our field manager).
pub async fn save(
    client: &Client,
    hza: &HorizontalAutoscaler,
    ring: &DemandRing,
) -> Result<(), String> {
    let cm = to_config_map(hza, ring);
    let ns = hza.namespace().unwrap_or_default();
    let name = cm.metadata.name.clone().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let params = PatchParams::apply(super::super::CONTROLLER_NAME).force();
    let mut body = serde_json::to_value(&cm).map_err(|e| e.to_string())?;
    body["apiVersion"] = "v1".into();
    body["kind"] = "ConfigMap".into();
    api.patch(&name, &params, &Patch::Apply(&body))
        .await
        .map(|_| ())
        .map_err(|e| format!("writing ConfigMap {ns}/{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn autoscaler() -> HorizontalAutoscaler {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
            "metadata": { "name": "web", "namespace": "shop", "uid": "u-1" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
                "maxReplicas": 10
            }
        }))
        .expect("an autoscaler")
    }

    #[test]
    fn names_stay_valid() {
        assert_eq!(config_map_name("web"), "web-demand-history");
        let long = "a".repeat(250);
        let name = config_map_name(&long);
        assert_eq!(name.len(), MAX_NAME);
        assert_ne!(name, config_map_name(&"a".repeat(251)));
        assert!(name.ends_with(SUFFIX));
    }

    #[test]
    fn a_config_map_round_trips() {
        let mut ring = DemandRing::new(60_000, 1000);
        for i in 0..5 {
            ring.record(1_765_000_000_000 + i * 60_000, 1.5 + i as f64);
        }
        let cm = to_config_map(&autoscaler(), &ring);
        assert_eq!(cm.metadata.name.as_deref(), Some("web-demand-history"));
        let owner = &cm.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.uid.as_str(), owner.kind.as_str()),
            ("u-1", "HorizontalAutoscaler")
        );
        assert_eq!(owner.block_owner_deletion, None);
        assert_eq!(from_config_map(&cm, 1000), Ok(ring));
    }

    #[test]
    fn malformed_config_maps_name_the_key() {
        let mut ring = DemandRing::new(60_000, 10);
        ring.record(0, 1.0);
        let good = to_config_map(&autoscaler(), &ring);
        let with = |key: &str, value: Option<&str>| {
            let mut cm = good.clone();
            let data = cm.data.as_mut().expect("data");
            match value {
                Some(v) => data.insert(key.to_owned(), v.to_owned()),
                None => data.remove(key),
            };
            cm
        };
        let mut odd = good.clone();
        odd.binary_data = Some(BTreeMap::from([(
            "values".to_owned(),
            ByteString(vec![1, 2]),
        )]));
        let mut none = good.clone();
        none.binary_data = None;
        let rows = [
            (
                with("stepSeconds", Some("0")),
                "key stepSeconds is not a positive",
            ),
            (with("stepSeconds", None), "key stepSeconds is missing"),
            (
                with("start", Some("yesterday")),
                "key start is not an RFC 3339 time",
            ),
            (with("format", Some("u16")), "key format is \"u16\""),
            (odd, "key values: 2 bytes"),
            (none, "key values (binaryData) is missing"),
        ];
        for (cm, want) in rows {
            let error = from_config_map(&cm, 10).expect_err(want);
            assert!(
                error.starts_with("ConfigMap shop/web-demand-history: ") && error.contains(want),
                "{error}"
            );
        }
    }
}
