use super::*;
use crate::validate::{validate_object, yaml_documents};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn convert_all(name: &str) -> Vec<Converted> {
    convert_yaml_stream(&fixture(name))
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

/// Converted objects must pass Ballast's own validation, and survive YAML and back unchanged.
fn assert_valid_and_round_trips(c: &Converted) {
    let report = validate_object(&c.object);
    assert!(report.is_valid(), "{}: {:?}", c.source, report.errors);
    let yaml = serde_yaml::to_string(&c.object).unwrap();
    let back = yaml_documents(&yaml).pop().unwrap().unwrap();
    assert_eq!(back, c.object);
}

fn has_note(c: &Converted, kind: NoteKind, field: &str) -> bool {
    c.notes.iter().any(|n| n.kind == kind && n.field == field)
}

#[test]
fn seed_hpa_converts_field_for_field() {
    let [c] = convert_all("seed-api-hpa.yaml").try_into().unwrap();
    assert_valid_and_round_trips(&c);
    assert!(c.notes.is_empty(), "nothing should be lost: {:?}", c.notes);
    let o = &c.object;
    assert_eq!(o["apiVersion"], "autoscaling.ballast.dev/v1");
    assert_eq!(o["kind"], "HorizontalAutoscaler");
    assert_eq!(o["metadata"]["namespace"], "app");
    assert_eq!(o["spec"]["minReplicas"], 3);
    assert_eq!(o["spec"]["maxReplicas"], 20);
    assert_eq!(
        o["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
        60
    );
    assert_eq!(
        o["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    assert_eq!(
        o["spec"]["metrics"][1]["pods"]["target"]["averageValue"],
        "50"
    );
    // The typed object reads back as the same spec the HPA had.
    let typed: crate::HorizontalAutoscaler = serde_json::from_value(o.clone()).unwrap();
    assert_eq!(typed.spec.metrics.len(), 2);
}

#[test]
fn seed_nodepool_converts_from_v1beta1() {
    let [c] = convert_all("seed-spot-general.yaml").try_into().unwrap();
    assert_valid_and_round_trips(&c);
    let o = &c.object;
    assert_eq!(o["apiVersion"], "nodes.ballast.dev/v1");
    assert_eq!(o["spec"]["disruption"]["consolidationPolicy"], "WhenEmpty");
    assert_eq!(o["spec"]["template"]["spec"]["taints"][0]["value"], "batch");
    assert_eq!(
        o["spec"]["template"]["spec"]["requirements"][0]["values"][1],
        "arm64"
    );
    // v1beta1 had no required node class: the default is filled in and said.
    assert_eq!(
        o["spec"]["template"]["spec"]["nodeClassRef"]["kind"],
        "Ec2NodeClass"
    );
    assert!(
        has_note(&c, NoteKind::Changed, "spec.template.spec.nodeClassRef"),
        "{:?}",
        c.notes
    );
}

#[test]
fn karpenter_v1_labels_are_renamed_and_said() {
    let [pool, class] = convert_all("karpenter-v1.yaml").try_into().unwrap();
    assert_valid_and_round_trips(&pool);
    assert_valid_and_round_trips(&class);
    let reqs = &pool.object["spec"]["template"]["spec"]["requirements"];
    assert_eq!(reqs[0]["key"], "nodes.ballast.dev/capacity-type");
    assert_eq!(reqs[1]["key"], "nodes.ballast.dev/instance-category");
    assert_eq!(reqs[1]["minValues"], 2);
    assert!(has_note(
        &pool,
        NoteKind::Changed,
        "spec.template.spec.requirements[0].key"
    ));
    assert_eq!(
        pool.object["spec"]["template"]["spec"]["nodeClassRef"]["group"],
        "nodes.ballast.dev"
    );
    assert_eq!(
        pool.object["spec"]["disruption"]["budgets"][1]["reasons"][0],
        "Drifted"
    );
    assert_eq!(class.object["kind"], "Ec2NodeClass");
    assert_eq!(class.object["spec"]["kubelet"]["maxPods"], 110);
    assert!(class.notes.is_empty(), "{:?}", class.notes);
}

#[test]
fn karpenter_static_pool_keeps_its_replicas() {
    let source: Value = serde_json::json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": { "name": "fixed" },
        "spec": {
            "replicas": 5,
            "limits": { "nodes": 8 },
            "template": { "spec": {
                "nodeClassRef": { "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default" },
                "requirements": [{ "key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"] }],
            } },
        },
    });
    let pool = convert(&source).expect("converts");
    assert_valid_and_round_trips(&pool);
    assert_eq!(pool.object["spec"]["replicas"], 5);
    assert!(
        !pool.notes.iter().any(|n| n.field.contains("replicas")),
        "{:?}",
        pool.notes
    );
}

#[test]
fn keda_triggers_become_metrics_and_losses_are_listed() {
    let [c, auth] = convert_all("keda-scaledobject.yaml").try_into().unwrap();
    assert_valid_and_round_trips(&c);
    assert!(auth.object.is_null() && has_note(&auth, NoteKind::Kept, "(object)"));
    let spec = &c.object["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(spec["minReplicas"], 0);
    assert_eq!(spec["maxReplicas"], 50);
    assert_eq!(spec["syncPeriodSeconds"], 10);
    assert_eq!(spec["cooldownPeriodSeconds"], 120);
    assert_eq!(spec["fallback"]["replicas"], 6);
    assert_eq!(spec["behavior"]["scaleDown"]["selectPolicy"], "Disabled");
    assert_eq!(
        spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );
    let metrics = spec["metrics"].as_array().unwrap();
    assert_eq!(
        metrics.len(),
        4,
        "new-relic is not supported and must be left out"
    );
    assert_eq!(metrics[0]["prometheus"]["target"]["averageValue"], "100");
    assert_eq!(metrics[0]["prometheus"]["activationThreshold"], "5");
    assert_eq!(metrics[1]["event"]["type"], "redis-list");
    assert_eq!(metrics[1]["event"]["name"], "backlog");
    assert_eq!(metrics[1]["event"]["target"]["averageValue"], "10");
    assert_eq!(
        metrics[1]["event"]["credentialsRef"]["name"],
        "redis-secret"
    );
    assert_eq!(metrics[2]["event"]["awsSqs"]["region"], "us-east-1");
    assert_eq!(metrics[2]["event"]["target"]["averageValue"], "5");
    assert_eq!(metrics[3]["event"]["cron"]["desiredReplicas"], 4);
    for field in [
        "spec.triggers[4]",
        "spec.triggers[0].metadata.namespace",
        "spec.advanced.restoreToOriginalReplicaCount",
    ] {
        assert!(
            has_note(&c, NoteKind::Dropped, field),
            "{field} not reported in {:?}",
            c.notes
        );
    }
    assert!(c.object["metadata"].get("annotations").is_none());
    assert!(has_note(
        &c,
        NoteKind::Changed,
        "spec.triggers[1].authenticationRef"
    ));
}

#[test]
fn vpa_converts() {
    let [c] = convert_all("vpa.yaml").try_into().unwrap();
    assert_valid_and_round_trips(&c);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    assert_eq!(
        c.object["spec"]["updatePolicy"]["updateMode"],
        "InPlaceOrRecreate"
    );
    assert_eq!(
        c.object["spec"]["resourcePolicy"]["containerPolicies"][0]["maxAllowed"]["memory"],
        "4Gi"
    );
}

#[test]
fn hpa_v1_target_cpu_becomes_a_metric() {
    let src = serde_json::json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}
    });
    let c = convert(&src).unwrap();
    assert_valid_and_round_trips(&c);
    assert_eq!(
        c.object["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    assert!(has_note(
        &c,
        NoteKind::Changed,
        "spec.targetCPUUtilizationPercentage"
    ));
}

#[test]
fn an_unknown_hpa_field_is_an_error_naming_it() {
    let src = serde_json::json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilisation": 50}}}]}
    });
    let err = convert(&src).unwrap_err().to_string();
    assert!(
        err.contains("spec.metrics[0].resource.target.averageUtilisation: unknown field"),
        "{err}"
    );
}

#[test]
fn bad_source_names_the_field() {
    let src = serde_json::json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": "lots"}
    });
    let err = convert(&src).unwrap_err().to_string();
    assert!(err.contains("spec.maxReplicas"), "{err}");
    assert!(err.contains("HorizontalPodAutoscaler default/web"), "{err}");

    let keda = serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "q", "namespace": "default"},
        "spec": {"scaleTargetRef": {"name": "q"}, "triggers": [{"type": "redis", "metadata": {"address": "127.0.0.1:6379"}}]}
    });
    let err = convert(&keda).unwrap_err().to_string();
    assert!(err.contains("spec.triggers[0].metadata.listName"), "{err}");
}

#[test]
fn unsupported_kinds_are_refused_by_name_and_other_objects_kept() {
    let src = serde_json::json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "x"}});
    let err = convert(&src).unwrap_err().to_string();
    assert!(err.contains("ScaledJob"), "{err}");
    let secret =
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    let kept = convert(&secret).unwrap();
    assert_eq!(kept.object, secret);
    assert!(has_note(&kept, NoteKind::Kept, "(object)"));
}

#[test]
fn one_bad_document_does_not_hide_the_others() {
    let text = format!(
        "{}\n---\napiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {{name: s}}\n---\n{}",
        fixture("seed-api-hpa.yaml"),
        fixture("vpa.yaml")
    );
    let results = convert_yaml_stream(&text);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
}

#[test]
fn a_list_counts_as_its_items() {
    let text = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}\n- {}\n",
        serde_json::to_string(
            &yaml_documents(&fixture("seed-api-hpa.yaml"))[0]
                .as_ref()
                .unwrap()
        )
        .unwrap(),
        serde_json::to_string(&yaml_documents(&fixture("vpa.yaml"))[0].as_ref().unwrap()).unwrap(),
    );
    let kinds: Vec<String> = convert_yaml_stream(&text)
        .into_iter()
        .map(|r| r.unwrap().object["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["HorizontalAutoscaler", "VerticalAutoscaler"]);
}

fn scaled_object(trigger: serde_json::Value) -> String {
    let object = serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "q", "namespace": "jobs"},
        "spec": {"scaleTargetRef": {"name": "q"}, "triggers": [trigger]}
    });
    serde_json::to_string(&object).unwrap()
}

#[test]
fn credentials_that_cannot_work_are_errors() {
    let rabbit = serde_json::json!({"type": "rabbitmq", "metadata": {"queueName": "q"}, "authenticationRef": {"name": "a"}});
    let auth = |key: &str| {
        format!(
            "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: a, namespace: jobs}}\nspec: {{secretTargetRef: [{{parameter: host, name: rabbit, key: {key}}}]}}\n"
        )
    };
    let cases = [
        (
            scaled_object(
                serde_json::json!({"type": "rabbitmq", "metadata": {"hostFromEnv": "AMQP_URL", "queueName": "q"}}),
            ),
            "spec.triggers[0].metadata.hostFromEnv: Ballast does not read",
        ),
        (scaled_object(rabbit.clone()), "which is not in the input"),
        (
            format!(
                "{}\n---\n{}",
                scaled_object(rabbit.clone()),
                auth("amqp-url")
            ),
            "Ballast reads key \"url\" of Secret \"rabbit\"",
        ),
        (
            format!(
                "{}\n---\napiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: a, namespace: jobs}}\nspec: {{podIdentity: {{provider: aws}}}}\n",
                scaled_object(rabbit.clone())
            ),
            "uses spec.podIdentity",
        ),
    ];
    for (text, fragment) in cases {
        let err = convert_yaml_stream(&text)
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("accepted: {text}"))
            .to_string();
        assert!(err.contains(fragment), "{err}");
    }
    let good = format!("{}\n---\n{}", scaled_object(rabbit), auth("url"));
    let converted = convert_yaml_stream(&good);
    let c = converted[0].as_ref().unwrap();
    assert_eq!(
        c.object["spec"]["metrics"][0]["event"]["credentialsRef"]["name"],
        "rabbit"
    );
    assert_valid_and_round_trips(c);
}

#[test]
fn kafka_triggers_carry_every_setting() {
    let trigger = serde_json::json!({"type": "kafka", "authenticationRef": {"name": "k"}, "metadata": {
        "bootstrapServers": "b-1:9092, b-2:9092", "consumerGroup": "workers", "topic": "jobs",
        "lagThreshold": "50", "activationLagThreshold": "3", "offsetResetPolicy": "earliest",
        "allowIdleConsumers": "false", "limitToPartitionsWithLag": "true",
        "excludePersistentLag": "true", "scaleToZeroOnInvalidOffset": "true",
        "partitionLimitation": "0,2-4", "unsafeSsl": "false", "tls": "enable", "sasl": "scram_sha512",
        "ensureEvenDistributionOfPartitions": "true"}});
    let auth = "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: k, namespace: jobs}\nspec: {secretTargetRef: [{parameter: username, name: kafka, key: username}, {parameter: password, name: kafka, key: password}, {parameter: ca, name: kafka, key: ca}, {parameter: cert, name: kafka, key: cert}, {parameter: key, name: kafka, key: key}]}\n";
    let text = format!("{}\n---\n{auth}", scaled_object(trigger));
    let converted = convert_yaml_stream(&text);
    let c = converted[0].as_ref().unwrap();
    assert_valid_and_round_trips(c);
    let event = &c.object["spec"]["metrics"][0]["event"];
    assert_eq!(
        event["kafka"],
        serde_json::json!({"bootstrapServers": ["b-1:9092", "b-2:9092"], "consumerGroup": "workers",
            "topic": "jobs", "partitionLimitation": [0, 2, 3, 4], "offsetResetPolicy": "earliest",
            "allowIdleConsumers": false, "limitToPartitionsWithLag": true,
            "excludePersistentLag": true, "scaleToZeroOnInvalidOffset": true, "unsafeSsl": false,
            "sasl": "scram_sha512", "enableTls": true})
    );
    assert_eq!(event["target"]["averageValue"], "50");
    assert_eq!(event["activationThreshold"], "3");
    assert_eq!(event["credentialsRef"]["name"], "kafka");
    assert!(has_note(
        c,
        NoteKind::Dropped,
        "spec.triggers[0].metadata.ensureEvenDistributionOfPartitions"
    ));
    // Defaults: KEDA's lagThreshold 10, every topic of the group.
    let plain = serde_json::json!({"type": "kafka", "metadata": {"bootstrapServers": "b:9092", "consumerGroup": "g"}});
    let converted = convert_yaml_stream(&scaled_object(plain));
    let c = converted[0].as_ref().unwrap();
    assert_valid_and_round_trips(c);
    let event = &c.object["spec"]["metrics"][0]["event"];
    assert_eq!(event["target"]["averageValue"], "10");
    assert!(event["kafka"].get("topic").is_none());
}

#[test]
fn kafka_settings_that_cannot_work_are_errors() {
    let cases = [
        (
            serde_json::json!({"sasl": "gssapi"}),
            "metadata.sasl: SASL mechanism \"gssapi\" is not supported",
        ),
        (
            serde_json::json!({"allowIdleConsumers": "true", "limitToPartitionsWithLag": "true"}),
            "metadata.limitToPartitionsWithLag: cannot be true together",
        ),
        (
            serde_json::json!({"excludePersistentLag": "yes"}),
            "metadata.excludePersistentLag: \"yes\" is not true or false",
        ),
        (
            serde_json::json!({"partitionLimitation": "1,x"}),
            "\"x\" is not a partition number",
        ),
        (
            serde_json::json!({"topic": "t", "partitionLimitation": "5-2"}),
            "\"5-2\" is not an increasing range",
        ),
        (
            serde_json::json!({"offsetResetPolicy": "none"}),
            "use latest or earliest",
        ),
    ];
    for (extra, fragment) in cases {
        let mut metadata = serde_json::json!({"bootstrapServers": "b:9092", "consumerGroup": "g"});
        for (k, v) in extra.as_object().unwrap() {
            metadata[k] = v.clone();
        }
        let text = scaled_object(serde_json::json!({"type": "kafka", "metadata": metadata}));
        let err = convert_yaml_stream(&text)
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("accepted: {text}"))
            .to_string();
        assert!(err.contains(fragment), "{err}");
    }
}

#[test]
fn tls_parameters_map_to_the_secret_keys_ballast_reads() {
    let rabbit = serde_json::json!({"type": "rabbitmq", "metadata": {"queueName": "q", "host": "amqps://rabbit:5671/%2f"}, "authenticationRef": {"name": "a"}});
    let auth = |entries: &str| {
        format!(
            "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {{name: a, namespace: jobs}}\nspec: {{secretTargetRef: [{entries}]}}\n"
        )
    };
    // KEDA's key names and the kubernetes.io/tls ones are both read.
    for entries in [
        "{parameter: ca, name: rabbit-tls, key: ca}, {parameter: cert, name: rabbit-tls, key: cert}, {parameter: key, name: rabbit-tls, key: key}",
        "{parameter: ca, name: rabbit-tls, key: ca.crt}, {parameter: cert, name: rabbit-tls, key: tls.crt}, {parameter: key, name: rabbit-tls, key: tls.key}",
    ] {
        let text = format!("{}\n---\n{}", scaled_object(rabbit.clone()), auth(entries));
        let converted = convert_yaml_stream(&text);
        let c = converted[0].as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.object["spec"]["metrics"][0]["event"]["credentialsRef"]["name"],
            "rabbit-tls"
        );
    }
    let text = format!(
        "{}\n---\n{}",
        scaled_object(rabbit),
        auth("{parameter: cert, name: rabbit-tls, key: client.pem}")
    );
    let err = convert_yaml_stream(&text)
        .into_iter()
        .find_map(Result::err)
        .expect("a key Ballast does not read")
        .to_string();
    assert!(err.contains("Ballast reads key \"cert\""), "{err}");
}

#[test]
fn pause_annotations_on_a_behavior_that_is_not_an_object_name_the_field() {
    let object = |behavior: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "q", "namespace": "jobs",
                "annotations": {"autoscaling.keda.sh/paused-scale-in": "true"}},
            "spec": {"scaleTargetRef": {"name": "q"},
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
                "triggers": [{"type": "cpu", "metadata": {"value": "50"}}]}
        })
        .to_string()
    };
    for (behavior, field) in [
        (
            serde_json::json!(5),
            "spec.advanced.horizontalPodAutoscalerConfig.behavior",
        ),
        (
            serde_json::json!({"scaleDown": "fast"}),
            "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown",
        ),
    ] {
        let err = convert_yaml_stream(&object(behavior))
            .into_iter()
            .find_map(Result::err)
            .expect("refused")
            .to_string();
        assert!(err.contains(field), "{err}");
    }
    let converted = convert_yaml_stream(&object(serde_json::json!({})));
    let c = converted[0].as_ref().expect("converted");
    assert_eq!(
        c.object["spec"]["behavior"]["scaleDown"]["selectPolicy"],
        "Disabled"
    );
}
