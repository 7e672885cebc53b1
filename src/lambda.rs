//! The same binary as a Lambda function (custom runtime `provided.al2023`). Started by the Lambda
//! runtime, which sets `AWS_LAMBDA_RUNTIME_API`, it serves invocations through the official
//! `lambda_runtime` crate, each one [`worker::handle`]. Like [`crate::cli`], a thin adapter: the
//! session comes from the function's environment (written by `dynamo-dr stack`), the payload
//! becomes an action, and the library's error a function error whose type names its exit
//! status, so that the state machines route refusals apart from failures.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::aws::AwsOptions;
use crate::config::Config;
use crate::error::{Error, ExitStatus, Result};
use crate::journal;
use crate::session::Session;
use crate::worker::{self, Action, Invocation, Role};

/// The function's config: the TOML of its table (and that table's environment).
pub const CONFIG_ENV: &str = "DYNAMO_DR_CONFIG";
/// `dynamodb://TABLE`: the journal the CLI reads too.
pub const JOURNAL_ENV: &str = "DYNAMO_DR_JOURNAL";
/// A KMS key for sensitive tables' checkpoint keys (`--journal-kms-key`).
pub const KMS_ENV: &str = "DYNAMO_DR_JOURNAL_KMS_KEY";
/// What the function is for: `table:LOGICAL` or `recovery-mode:ENVIRONMENT` ([`Role`]).
pub const ROLE_ENV: &str = "DYNAMO_DR_ROLE";
/// Seconds one AWS call attempt may take (the CLI's `--attempt-timeout`), 60 by default.
pub const ATTEMPT_TIMEOUT_ENV: &str = "DYNAMO_DR_ATTEMPT_TIMEOUT_SECONDS";
/// Seconds an invocation keeps free before its deadline, to checkpoint and answer.
pub const MARGIN_ENV: &str = "DYNAMO_DR_MARGIN_SECONDS";
const DEFAULT_MARGIN: Duration = Duration::from_secs(30);

/// Whether the Lambda runtime started this process.
pub fn is_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// The session a function's environment describes.
pub fn session_from_env() -> Result<Session> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let config = match var(CONFIG_ENV) {
        Some(text) => Config::parse(&text)?,
        None => Config::default(),
    };
    let journal = var(JOURNAL_ENV).ok_or_else(|| {
        Error::invalid(
            JOURNAL_ENV,
            "the function has no journal; set it to dynamodb://TABLE, as `dynamo-dr stack` does",
        )
    })?;
    let journal = journal::Location::parse(Some(&journal))?;
    if !matches!(journal, journal::Location::DynamoDb(_)) {
        return Err(Error::invalid(
            JOURNAL_ENV,
            "a function's journal must be a DynamoDB table (dynamodb://TABLE): its local disk \
             does not outlive the invocation",
        ));
    }
    // The CLI's defaults (`--retry-budget`, `--attempt-timeout`).
    let budget = crate::aws::DEFAULT_RETRY_BUDGET;
    Ok(Session {
        aws: AwsOptions {
            sdk: Default::default(),
            region: config.aws.region.clone(),
            profile: None,
            endpoint_url: config.aws.endpoint_url.clone(),
            attempt_timeout: Some(Duration::from_secs(
                var(ATTEMPT_TIMEOUT_ENV)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(crate::aws::DEFAULT_ATTEMPT_TIMEOUT_SECONDS),
            )),
            max_attempts: Some(budget),
        },
        retry: crate::backoff::RetryPolicy {
            max_attempts: budget,
            ..Default::default()
        },
        max_read_rate: None,
        max_write_rate: None,
        journal_key: None,
        journal_kms_key: var(KMS_ENV),
        journal,
        config,
    })
}

/// The function's role, from [`ROLE_ENV`]: without one it serves nothing.
pub fn role_from_env() -> Result<Role> {
    match std::env::var(ROLE_ENV) {
        Ok(r) => Role::parse(&r),
        Err(_) => Err(Error::invalid(
            ROLE_ENV,
            "the function has no role, so it takes no action; set it to table:LOGICAL or \
             recovery-mode:ENVIRONMENT, as `dynamo-dr stack` does",
        )),
    }
}

/// The invocation's time as the runtime gives it: `deadline_ms` after the epoch.
pub fn invocation(deadline_ms: u64, request_id: &str, role: Role) -> Invocation {
    let left = (SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms))
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let margin = std::env::var(MARGIN_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_MARGIN)
        // A short timeout keeps most of its time for work.
        .min(left / 4);
    Invocation {
        deadline: Instant::now() + left,
        margin,
        worker: request_id.to_string(),
        role,
    }
}

/// A library error as the function's error: its type is what the state machines catch.
pub fn diagnostic(e: &Error) -> Diagnostic {
    let error_type = match e.exit_status() {
        ExitStatus::Refused => "Refused",
        ExitStatus::Mismatch => "VerificationFailed",
        _ => "Failed",
    };
    Diagnostic {
        error_type: error_type.into(),
        error_message: e.to_string(),
    }
}

/// One invocation: the payload, run, answered.
pub async fn invoke(
    session: &Session,
    role: &Role,
    event: LambdaEvent<Value>,
) -> std::result::Result<Value, Diagnostic> {
    let inv = invocation(
        event.context.deadline,
        &event.context.request_id,
        role.clone(),
    );
    let answer = async {
        let action = Action::parse(event.payload)?;
        let answer = worker::handle(session, action, &inv).await?;
        // One whole line on stdout: CloudWatch Logs extracts an EMF document only when the
        // log event is the JSON object alone.
        if let Some(m) = &answer.metrics {
            println!("{}", m.line(jiff::Timestamp::now().as_millisecond()));
        }
        serde_json::to_value(answer).map_err(|e| Error::Journal(e.to_string()))
    };
    answer.await.map_err(|e| {
        tracing::error!(request = %inv.worker, error = %e, "invocation failed");
        diagnostic(&e)
    })
}

/// The function's main loop, until the runtime stops it.
pub fn main() -> ExitCode {
    // JSON lines on standard output go to the function's CloudWatch log group.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let served = runtime.block_on(async {
        let session = Arc::new(session_from_env().map_err(|e| e.to_string())?);
        let role = Arc::new(role_from_env().map_err(|e| e.to_string())?);
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let (session, role) = (session.clone(), role.clone());
            async move { invoke(&session, &role, event).await }
        }))
        .await
        .map_err(|e| e.to_string())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the function stopped");
            ExitCode::from(1)
        }
    }
}
