//! Kubernetes events (events.k8s.io/v1) from the node controllers. Repeats of the same event are
//! folded into a series by kube-runtime's recorder.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The reporting controller name on every event.
pub const REPORTER: &str = "ballast-nodes";

/// Publishes events; failures are logged, never fatal.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

/// Notes are limited to 1 KiB by the API server.
pub fn truncate_note(mut s: String) -> String {
    const MAX: usize = 1000;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl Events {
    pub fn new(client: Client) -> Self {
        let reporter = Reporter {
            controller: REPORTER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Events {
            recorder: Recorder::new(client, reporter),
        }
    }

    async fn publish(
        &self,
        type_: EventType,
        on: &ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate_note(note)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, on).await {
            tracing::debug!(reason, object = ?on.name, error = %e, "event not published");
        }
    }

    pub async fn warning(&self, on: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(EventType::Warning, on, reason, action, note)
            .await
    }

    pub async fn normal(&self, on: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(EventType::Normal, on, reason, action, note)
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn notes_are_cut_on_a_char_boundary() {
        let s = "é".repeat(700);
        let t = super::truncate_note(s);
        assert!(t.len() <= 1003);
        assert!(t.ends_with('…'));
        assert_eq!(super::truncate_note("short".into()), "short");
    }
}
