//! What every job needs, resolved once from the command line and the config: the AWS
//! connection, the journal, the retry budget, the rate caps and the keys that seal sensitive
//! checkpoints. An embedding program builds one and passes it to the jobs.

use std::sync::Arc;

use crate::aws::{self, AwsOptions};
use crate::backoff::RetryPolicy;
use crate::config::{Config, TableOptions};
use crate::digest::KeyDigest;
use crate::error::Result;
use crate::journal::seal::JournalKey;
use crate::journal::{self, Execution, Journal};
use crate::rate::{Limiter, RateCap};
use crate::sync::SyncOptions;
use crate::table::TableInfo;

pub struct Session {
    /// The tables, environments and exclusions (`dynamo-dr.toml`).
    pub config: Config,
    /// Region, profile, endpoint and the SDK's per-attempt limits.
    pub aws: AwsOptions,
    /// Where executions, leases and recovery-mode records are kept.
    pub journal: journal::Location,
    /// The budget of attempts in a row that get nothing through.
    pub retry: RetryPolicy,
    /// From the command line; a table's config applies where these are unset.
    pub max_read_rate: Option<RateCap>,
    pub max_write_rate: Option<RateCap>,
    /// Seals sensitive tables' checkpoint keys (`--journal-key-file`, `DYNAMO_DR_JOURNAL_KEY`).
    pub journal_key: Option<JournalKey>,
    /// Or: a KMS key that makes a fresh journal key per execution (`--journal-kms-key`).
    pub journal_kms_key: Option<String>,
}

impl Session {
    /// For a table of an environment, marks each mapping on its stream with what
    /// `recovery-mode end` will do with it (the environment's `skip_recovery_events`).
    pub fn mark_end_policies(
        &self,
        table: &str,
        watchers: &mut crate::watchers::Watchers,
    ) -> crate::error::Result<()> {
        if let Some(env) = self.config.environment_of(table) {
            let skip = self.config.environment(&env)?.skip_recovery_events;
            watchers.mark_end_policies(&skip);
        }
        Ok(())
    }

    /// Whether the config marks `table` sensitive (excluded or not).
    pub fn is_sensitive(&self, table: &str) -> bool {
        self.config.is_sensitive(table)
    }

    /// Both tables sensitive when either is: a comparison names the keys of both.
    pub fn mark_sensitive(&self, mut a: TableInfo, mut b: TableInfo) -> (TableInfo, TableInfo) {
        let either =
            a.sensitive || b.sensitive || self.is_sensitive(&a.name) || self.is_sensitive(&b.name);
        a.sensitive = either;
        b.sensitive = either;
        (a, b)
    }

    /// Names sensitive keys: under the operator's journal key when there is one, so they can be
    /// looked up with `dynamo-dr key-digest`; else under a key nobody keeps.
    pub fn key_digest(&self) -> KeyDigest {
        self.journal_key
            .as_ref()
            .map_or_else(KeyDigest::ephemeral, JournalKey::digest_key)
    }

    /// Refuses a run on a sensitive table before anything changes when there is no key.
    pub fn require_key(&self, sensitive: bool, table: &str) -> Result<()> {
        if sensitive && self.journal_key.is_none() && self.journal_kms_key.is_none() {
            return Err(crate::execution::missing_key(table));
        }
        Ok(())
    }

    /// The key that seals a sensitive execution's checkpoints: the one KMS wrapped into its
    /// record, else the operator's, else a new one from KMS (returned wrapped, for the record).
    pub async fn execution_key(
        &self,
        existing: Option<&Execution>,
        sensitive: bool,
        id: &str,
        table: &str,
    ) -> Result<(Option<JournalKey>, Option<journal::WrappedKey>)> {
        if !sensitive {
            return Ok((None, None));
        }
        if let Some(wrapped) = existing.and_then(|e| e.data_key.as_ref()) {
            let kms = aws::kms_client(&self.aws).await;
            let key = journal::envelope::unwrap(&kms, wrapped, id).await?;
            return Ok((Some(key), None));
        }
        if let Some(key) = &self.journal_key {
            return Ok((Some(key.clone()), None));
        }
        match (&self.journal_kms_key, existing) {
            (Some(kms_key), None) => {
                let kms = aws::kms_client(&self.aws).await;
                let (key, wrapped) = journal::envelope::new_data_key(&kms, kms_key, id).await?;
                Ok((Some(key), Some(wrapped)))
            }
            // A run started with the operator's own key needs that key back.
            _ => Err(crate::execution::missing_key(table)),
        }
    }

    /// A DynamoDB client and the journal.
    pub async fn open(&self) -> Result<(aws_sdk_dynamodb::Client, Arc<dyn Journal>)> {
        let client = aws::dynamodb_client(&self.aws).await;
        let journal = journal::open(&self.journal, &client).await?;
        Ok((client, journal))
    }

    /// The retry budget and rate caps for a run on `table` (None: no configured table).
    pub fn pacing(&self, table: Option<&TableOptions>) -> SyncOptions {
        let read = self.max_read_rate.or(table.and_then(|t| t.max_read_rate));
        let write = self.max_write_rate.or(table.and_then(|t| t.max_write_rate));
        SyncOptions {
            retry: self.retry.clone(),
            read_rate: Arc::new(Limiter::new(read)),
            write_rate: Arc::new(Limiter::new(write)),
            ..SyncOptions::default()
        }
    }
}
