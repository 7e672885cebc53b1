//! Least privilege, proven: every scenario the tool supports runs against moto through a proxy
//! that records what IAM would evaluate for each request (action, resource, request context),
//! and an independent IAM simulator evaluates every one against the policy `iam-policy` prints
//! for that scenario. Zero denials; every grant used by some request or named in
//! `dynamo_dr::iam::UNREACHED` with the call that needs it; and the denials that must hold.

#[path = "../integration/support.rs"]
#[allow(dead_code)]
mod support;

mod denials;
mod prewarm;
mod scenarios;
mod stack;
mod window;

use std::collections::{BTreeMap, BTreeSet};

use dynamo_dr_testkit::iam::{self, ACCOUNT, Authorization, Verdict};
use dynamo_dr_testkit::*;
use serde_json::Value;

use support::{Run, dr_env};

pub const JOURNAL: &str = "dr-journal";

/// One moto, its config, and the live-window proxy every run goes through (moto freezes a
/// table's PITR window when PITR is enabled; DynamoDB's moves on).
pub struct Lab {
    pub moto: Emulator,
    pub live: FaultProxy,
    pub dir: tempfile::TempDir,
    pub config: String,
}

impl Lab {
    pub async fn start(config: &str) -> Lab {
        let moto = Emulator::start(Kind::Moto).await;
        let live = FaultProxy::with_history(
            &moto.endpoint(),
            Faults {
                live_pitr_window: true,
                ..Faults::none()
            },
        );
        let dir = tempfile::tempdir().expect("dir");
        let config = support::write_file(&dir, "dynamo-dr.toml", config);
        Lab {
            moto,
            live,
            dir,
            config,
        }
    }

    /// A proxy that records what IAM would evaluate, in front of the live-window proxy.
    pub fn recorder(&self) -> RecordingProxy {
        RecordingProxy::start(self.live.url())
    }

    /// `dynamo-dr --config CONFIG ARGS…` through `proxy`.
    pub fn run(&self, proxy: &RecordingProxy, args: &[&str]) -> Run {
        let mut all = vec!["--config", self.config.as_str()];
        all.extend_from_slice(args);
        dr_env(&self.moto, &[("AWS_ENDPOINT_URL", proxy.url())], &all, None)
    }

    /// The policy `iam-policy` prints with these flags (global flags first, as `--journal`).
    pub fn policy(&self, global: &[&str], flags: &[&str]) -> Value {
        let mut all = vec!["--config", self.config.as_str()];
        all.extend_from_slice(global);
        all.extend(["iam-policy", "--account", ACCOUNT]);
        all.extend_from_slice(flags);
        let run = support::dr(&self.moto, &all, None);
        run.assert_code(0);
        serde_json::from_str(&run.stdout).expect("policy JSON")
    }
}

/// A scenario's requests, evaluated against its role's policies.
pub struct Outcome {
    pub scenario: String,
    pub policies: Vec<Value>,
    pub verdicts: Vec<Verdict>,
    /// Names (tables, environments, logical names) whose letters end the statement ids.
    pub names: Vec<String>,
}

pub fn evaluate(
    scenario: &str,
    policies: Vec<Value>,
    auths: Vec<Authorization>,
    names: &[&str],
) -> Outcome {
    assert!(!auths.is_empty(), "{scenario}: no request was recorded");
    let verdicts = iam::evaluate(&policies, &auths);
    Outcome {
        scenario: scenario.to_string(),
        policies,
        verdicts,
        names: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// Every request the simulator did not allow, one line each.
pub fn denied(outcome: &Outcome) -> Vec<String> {
    outcome
        .verdicts
        .iter()
        .filter(|v| !v.allowed())
        .map(|v| {
            let a = &v.authorization;
            format!(
                "{}: {} {} on {} ({}) context {:?} (ignored {:?}) {}",
                outcome.scenario,
                v.result,
                a.action,
                a.resource,
                a.call,
                a.context,
                v.ignored,
                v.errors.as_ref().map(|e| e.to_string()).unwrap_or_default()
            )
        })
        .collect()
}

/// `*` and `?` as IAM matches them in actions.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// A statement id without the letters of the names it was made for: `LiveTableOrders` is
/// `LiveTable` in every scenario.
fn family(sid: &str, names: &[String]) -> String {
    let mut out = sid.to_string();
    for n in names {
        let clean: String = n.chars().filter(char::is_ascii_alphanumeric).collect();
        if let Some(stripped) = out.strip_suffix(&clean) {
            out = stripped.to_string();
        }
    }
    out
}

/// (kind of role, statement family, action) triples.
pub type Grants = BTreeSet<(String, String, String)>;

/// Roles of one kind share their statements' families; a grant must be used by a role of its
/// own kind: an operator's use does not justify a stack function's grant.
fn kind(scenario: &str) -> String {
    match scenario.strip_prefix("stack: ") {
        Some(f @ ("table function" | "recovery-mode function")) => f.to_string(),
        Some(_) => "state machine".into(),
        None => "operator".into(),
    }
}

/// What any outcome's policies grant, and what some request used, per kind of role.
pub fn grants_and_uses(outcomes: &[Outcome]) -> (Grants, Grants) {
    let (mut granted, mut used) = (BTreeSet::new(), BTreeSet::new());
    for o in outcomes {
        let statements = o
            .policies
            .iter()
            .flat_map(|p| p["Statement"].as_array().into_iter().flatten());
        for s in statements.filter(|s| s["Effect"] == "Allow") {
            let sid = s["Sid"].as_str().unwrap_or_default();
            let fam = family(sid, &o.names);
            for action in s["Action"].as_array().into_iter().flatten() {
                let action = action.as_str().unwrap_or_default();
                let grant = (kind(&o.scenario), fam.clone(), action.to_string());
                let hit = o.verdicts.iter().any(|v| {
                    v.allowed_by.iter().any(|by| by == sid) && glob(action, &v.authorization.action)
                });
                if hit {
                    used.insert(grant.clone());
                }
                granted.insert(grant);
            }
        }
    }
    (granted, used)
}

/// Grants no request of their kind of role used, and neither `iam::UNREACHED` nor
/// `stack::UNREACHED` explains.
pub fn unexplained(outcomes: &[Outcome]) -> Vec<(String, String, String)> {
    let (granted, used) = grants_and_uses(outcomes);
    granted
        .difference(&used)
        .filter(|(_, fam, action)| {
            !dynamo_dr::iam::UNREACHED
                .iter()
                .chain(dynamo_dr::stack::UNREACHED)
                .any(|(f, a, _)| f == fam && glob(a, action))
        })
        .cloned()
        .collect()
}

/// Item-level DynamoDB requests of the tool itself (not a restore's target permissions) whose
/// partition keys the recorder could not name: `dynamodb:LeadingKeys` would be missing, and a
/// `ForAllValues` condition on it would hold vacuously.
pub fn unkeyed(outcomes: &[Outcome]) -> Vec<String> {
    const ITEM_LEVEL: [&str; 7] = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
    ];
    outcomes
        .iter()
        .flat_map(|o| o.verdicts.iter().map(move |v| (o, &v.authorization)))
        .filter(|(_, a)| ITEM_LEVEL.contains(&a.action.as_str()) && !a.call.contains("Restore"))
        .filter(|(_, a)| !a.context.contains_key("dynamodb:LeadingKeys"))
        .map(|(o, a)| {
            format!(
                "{}: {} on {} ({})",
                o.scenario, a.action, a.resource, a.call
            )
        })
        .collect()
}

/// The actions each outcome requested, for messages.
pub fn requested(outcomes: &[Outcome]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in outcomes {
        for v in &o.verdicts {
            out.entry(o.scenario.clone())
                .or_default()
                .insert(v.authorization.action.clone());
        }
    }
    out
}
