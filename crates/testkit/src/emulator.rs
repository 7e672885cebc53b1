//! Starting and stopping the pinned emulators.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

/// The pinned versions that `scripts/setup-emulators` installs.
pub const MOTO_VERSION: &str = "5.2.5";
pub const DYNALITE_VERSION: &str = "4.0.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Control plane: backups, PITR, tags, Lambda.
    Moto,
    /// Data plane: strict validation, real CREATING/DELETING states, fast scans.
    Dynalite,
}

pub struct Emulator {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    /// A journal directory private to this emulator's runs, removed on drop.
    pub journal_dir: PathBuf,
}

/// `$XDG_CACHE_HOME/dynamo-dr` or `~/.cache/dynamo-dr`: where the emulators are installed.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DYNAMO_DR_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("dynamo-dr")
}

fn executable(kind: Kind) -> PathBuf {
    let (var, default) = match kind {
        Kind::Moto => (
            "DYNAMO_DR_MOTO_SERVER",
            cache_dir().join(format!("moto-{MOTO_VERSION}/bin/moto_server")),
        ),
        Kind::Dynalite => (
            "DYNAMO_DR_DYNALITE",
            cache_dir().join(format!(
                "dynalite-{DYNALITE_VERSION}/node_modules/.bin/dynalite"
            )),
        ),
    };
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    assert!(
        path.exists(),
        "{kind:?} is not installed at {}: run scripts/setup-emulators (or set {var})",
        path.display()
    );
    path
}

/// A loopback listener on a port never handed out before in this process. The OS may give a
/// released port again at once: two tests' emulators on one port would each find the other's
/// answering and share it, and a proxy on an emulator's port before the emulator binds it would
/// answer in its place.
pub(crate) fn loopback_listener() -> TcpListener {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    // Held until a new port comes, so the OS does not hand the same one back.
    let mut seen = Vec::new();
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
        let port = listener.local_addr().expect("local address").port();
        if !given.contains(&port) {
            given.push(port);
            return listener;
        }
        seen.push(listener);
    }
}

/// A port for an emulator to bind (see [`loopback_listener`]).
fn free_port() -> u16 {
    let listener = loopback_listener();
    listener.local_addr().expect("local address").port()
}

impl Emulator {
    /// Starts an emulator and waits until it answers requests.
    pub async fn start(kind: Kind) -> Emulator {
        Self::start_with(kind, &[]).await
    }

    /// As [`Emulator::start`], with extra arguments (e.g. dynalite's `--createTableMs`).
    pub async fn start_with(kind: Kind, extra: &[&str]) -> Emulator {
        Self::start_with_env(kind, extra, &[]).await
    }

    /// As [`Emulator::start_with`], with environment variables for the emulator's process
    /// (e.g. moto's `MOTO_PORT`, where its Step Functions engine sends service calls).
    pub async fn start_with_env(kind: Kind, extra: &[&str], env: &[(&str, &str)]) -> Emulator {
        let exe = executable(kind);
        let mut last_failure = String::new();
        // The port is free when chosen but another process may take it before the emulator binds
        // it; a few attempts make that race harmless.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&exe);
            match kind {
                Kind::Moto => cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]),
                Kind::Dynalite => cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]),
            };
            cmd.args(extra)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
            let journal_dir =
                std::env::temp_dir().join(format!("dynamo-dr-test-{}-{port}", std::process::id()));
            let mut emulator = Emulator {
                kind,
                port,
                child,
                journal_dir,
            };
            match emulator.wait_ready(Duration::from_secs(60)).await {
                Ok(()) => return emulator,
                Err(e) => last_failure = e,
            }
        }
        panic!("{kind:?} did not start: {last_failure}");
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let client = self.client();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status} (port {} taken?)", self.port));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && client.list_tables().send().await.is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "no answer on port {} within {timeout:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A DynamoDB client with static credentials, as production code builds one.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        client_for(&self.endpoint())
    }

    /// Environment for a `dynamo-dr` subprocess talking to this emulator and nothing else.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("NO_COLOR", "1".into()),
            ("DYNAMO_DR_JOURNAL", self.journal_dir.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Wipes all state (moto only).
    pub async fn reset(&self) {
        assert_eq!(self.kind, Kind::Moto, "only moto has a reset endpoint");
        let reply = self.post("/moto-api/reset", "", "");
        assert!(
            reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
            "reset: {reply}"
        );
    }

    /// A raw HTTP POST, for the few moto services the tests need without an SDK crate (IAM, SQS).
    pub fn post(&self, path: &str, extra_headers: &str, body: &str) -> String {
        self.send("POST", path, extra_headers, body.as_bytes())
    }

    /// One HTTP request to the emulator; the whole reply as text.
    pub fn send(&self, method: &str, path: &str, extra_headers: &str, body: &[u8]) -> String {
        use std::io::{Read, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut s = TcpStream::connect(addr).expect("connect to emulator");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .expect("send request");
        s.write_all(body).expect("send body");
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// A path-style S3 request to moto (`PUT /bucket`, `PUT /bucket/key`).
    pub fn s3(&self, method: &str, path: &str, body: &[u8]) -> String {
        let headers = format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"
        );
        let reply = self.send(method, path, &headers, body);
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "S3 {method} {path}: {reply}"
        );
        reply
    }

    /// A JSON-protocol call (`AWSStepFunctions.ListStateMachines` to `states`), signed just
    /// enough for routing.
    pub fn json_call(&self, service: &str, target: &str, body: &str) -> serde_json::Value {
        let headers = format!(
            "Content-Type: application/x-amz-json-1.0\r\nX-Amz-Target: {target}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\n"
        );
        let reply = self.post("/", &headers, body);
        assert!(reply.starts_with("HTTP/1.1 200"), "{target}: {reply}");
        let json = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{target}: not JSON ({e}): {reply}"))
    }

    /// A query-protocol call to a moto service (`iam`, `sqs`), signed just enough for routing.
    pub fn query(&self, service: &str, body: &str) -> String {
        let headers = format!(
            "Content-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=test/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n"
        );
        let reply = self.post("/", &headers, body);
        assert!(
            reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
            "{service} {body}: {reply}"
        );
        reply
    }

    /// A Lambda client with static credentials.
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new(REGION))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "test", "test", None, None, "testkit",
            ))
            .endpoint_url(self.endpoint())
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }
}

pub const REGION: &str = "us-east-1";

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.journal_dir);
    }
}

/// A DynamoDB client for `endpoint` (an emulator, or a proxy in front of one).
pub fn client_for(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "testkit"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
