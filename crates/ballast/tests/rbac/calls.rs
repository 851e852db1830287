//! The calls made under a reconciler's token, and what each must answer: allowed, or refused with
//! 403 by RBAC or by the admission policy (told apart by the message). Every answer is kept for the
//! printed list.

use std::future::Future;

use anyhow::{Context as _, Result, bail};
use kube::api::{DeleteParams, PatchParams, PostParams};

use crate::Identity;

#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) lines: Vec<String>,
    pub(crate) allowed: usize,
    pub(crate) denied: usize,
}

impl Ledger {
    pub(crate) fn allowed(&mut self, who: &str, what: &str) {
        self.allowed += 1;
        self.lines.push(format!("allowed  {who:<10} {what}"));
    }

    pub(crate) fn denied(&mut self, who: &str, what: &str, by: &str) {
        self.denied += 1;
        self.lines.push(format!("denied   {who:<10} {what} ({by})"));
    }
}

pub(crate) fn dry_patch() -> PatchParams {
    PatchParams {
        dry_run: true,
        ..Default::default()
    }
}

pub(crate) fn dry_delete() -> DeleteParams {
    DeleteParams {
        dry_run: true,
        ..Default::default()
    }
}

pub(crate) fn dry_post() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

/// Who refused: `RBAC` or the admission policy, from a 403's message.
pub(crate) fn refusal(e: &kube::Error) -> Option<&'static str> {
    match e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains("ValidatingAdmissionPolicy") => {
            Some("admission policy")
        }
        kube::Error::Api(s) if s.code == 403 => Some("RBAC"),
        _ => None,
    }
}

/// `call` must be refused with 403, by the admission policy when `by_policy`, else by RBAC.
pub(crate) async fn expect_denied<T>(
    ledger: &mut Ledger,
    who: &Identity,
    what: &str,
    by_policy: bool,
    call: impl Future<Output = kube::Result<T>>,
) -> Result<()> {
    let want = if by_policy {
        "admission policy"
    } else {
        "RBAC"
    };
    match call.await {
        Err(e) if refusal(&e) == Some(want) => {
            ledger.denied(&who.account, what, want);
            Ok(())
        }
        Err(e) => bail!("{}: {what}: want a 403 from {want}, got {e}", who.account),
        Ok(_) => bail!("{}: {what}: allowed, want a 403 from {want}", who.account),
    }
}

/// `call` must succeed.
pub(crate) async fn expect_allowed<T>(
    ledger: &mut Ledger,
    who: &Identity,
    what: &str,
    call: impl Future<Output = kube::Result<T>>,
) -> Result<()> {
    call.await
        .with_context(|| format!("{}: {what}: refused", who.account))?;
    ledger.allowed(&who.account, what);
    Ok(())
}
