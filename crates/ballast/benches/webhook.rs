//! Admission latency of the vertical webhook, measured from an HTTPS client on 127.0.0.1 (what
//! the API server's call adds on top of its own work): 200 objects in the index, pod creations
//! sent at a fixed rate (200 per second, the goal: p99 < 5 ms), then as fast as 8
//! connections go.
//!
//! `cargo bench -p ballast --bench webhook` (`-- --seconds N --rate R` to change).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_api::vertical::{RecommendedContainerResources, RecommendedPodResources};
use ballast_controller::vertical::webhook::{self, Certificate, Entry, Index, TlsListener};
use ballast_horizontal::selector::Selector;
use k8s_openapi::api::core::v1::LimitRange;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::reflector;
use serde_json::json;
use support::{arg, percentile};

const OBJECTS: usize = 200;

fn index() -> Arc<Index> {
    let index = Arc::new(Index::default());
    for i in 0..OBJECTS {
        let spec = serde_json::from_value(json!({
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": format!("w{i}") },
            "updatePolicy": { "updateMode": "Initial" }
        }))
        .expect("spec");
        let recommendation = RecommendedPodResources {
            container_recommendations: vec![RecommendedContainerResources {
                container_name: "app".into(),
                target: [
                    ("cpu".to_owned(), Quantity("352m".into())),
                    ("memory".to_owned(), Quantity("511772988".into())),
                ]
                .into(),
                ..Default::default()
            }],
        };
        let selector = Selector::parse(&format!("app=w{i}")).expect("selector");
        let entry = Entry {
            selector: Arc::new(selector),
            spec,
            recommendation: Some(recommendation),
            held: Default::default(),
        };
        index.set("bench", &format!("w{i}"), Some(entry));
    }
    index
}

fn review(n: usize) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-0000-0000-{n:012}"),
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": "Pod" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": "bench",
            "operation": "CREATE",
            "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": format!("w{}-5d4f8c9b7-", n % OBJECTS),
                    "namespace": "bench",
                    "labels": { "app": format!("w{}", n % OBJECTS), "pod-template-hash": "5d4f8c9b7" },
                    "annotations": { "kubectl.kubernetes.io/restartedAt": "2026-12-07T00:00:00Z" }
                },
                "spec": {
                    "containers": [
                        { "name": "app", "image": "registry.k8s.io/pause:3.10",
                          "resources": { "requests": { "cpu": "100m", "memory": "64Mi" },
                                         "limits": { "cpu": "200m", "memory": "128Mi" } } },
                        { "name": "sidecar", "image": "registry.k8s.io/pause:3.10" }
                    ]
                }
            },
            "dryRun": false
        }
    })
    .to_string()
}

fn summary(label: &str, mut latencies: Vec<Duration>, took: Duration) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: {} reviews in {:.1} s ({:.0}/s): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        took.as_secs_f64(),
        latencies.len() as f64 / took.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

async fn send(client: &reqwest::Client, url: &str, body: String) -> Duration {
    let started = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook call");
    let text = response.text().await.expect("webhook answer");
    assert!(text.contains("\"patch\""), "no patch in {text}");
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = arg("--seconds", 10.0);
    let rate = arg("--rate", 200.0);
    let certificate = Certificate::generate(&[]).expect("certificate");
    let listener = TlsListener::bind("127.0.0.1:0".parse().expect("addr"), &certificate)
        .await
        .expect("bind");
    let addr = webhook::local_addr(&listener).expect("addr");
    let (limit_ranges, _writer) = reflector::store::<LimitRange>();
    tokio::spawn(webhook::serve(
        listener,
        index(),
        limit_ranges,
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certificate.ca_pem.as_bytes()).expect("ca"),
        )
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{}{}", addr.port(), webhook::PATH);
    for n in 0..50 {
        send(&client, &url, review(n)).await; // warm the connection pool
    }

    let total = (seconds * rate) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let started = Instant::now();
    let mut calls = Vec::with_capacity(total);
    for n in 0..total {
        tick.tick().await;
        let (client, url) = (client.clone(), url.clone());
        calls.push(tokio::spawn(
            async move { send(&client, &url, review(n)).await },
        ));
    }
    let mut latencies = Vec::with_capacity(total);
    for c in calls {
        latencies.push(c.await.expect("call"));
    }
    summary(&format!("at {rate:.0}/s"), latencies, started.elapsed());

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds / 2.0);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut n = w;
                while Instant::now() < deadline {
                    out.push(send(&client, &url, review(n)).await);
                    n += 8;
                }
                out
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.expect("worker"));
    }
    summary("8 connections, no pause", latencies, started.elapsed());
}
