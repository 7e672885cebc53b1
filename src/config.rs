//! The per-table configuration file: logical names, exclusions and per-table options.
//!
//! Layering, highest first: command-line flags, the table's section, `[defaults]`, built-in
//! defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Looked for in the working directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "dynamo-dr.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub aws: AwsSection,
    #[serde(default)]
    pub defaults: TableOptions,
    /// Logical name to table.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// Environments whose Lambda functions recovery mode pauses.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentSection>,
    /// Where the config was read from, for messages.
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// The text it was parsed from.
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableOptions {
    /// Parallel scan segments.
    pub segments: Option<u32>,
    /// BatchWriteItem requests in flight.
    pub write_concurrency: Option<usize>,
    /// Items per Scan page, as `--scan-page-limit`: smaller pages checkpoint more often. A
    /// Lambda function, which has no command line, reads it here.
    pub scan_page_limit: Option<i32>,
    /// Cap on reads: items/s (2000) or capacity units/s ("800cu").
    pub max_read_rate: Option<crate::rate::RateCap>,
    /// Cap on writes: items/s (2000) or capacity units/s ("800cu").
    pub max_write_rate: Option<crate::rate::RateCap>,
    /// The table holds data that must not leave it: its keys are encrypted in the journal and
    /// shown only as digests, and a journal key is required to run on it.
    pub sensitive: Option<bool>,
    /// Take the forensic backup before a restore [default: true]; false for tables whose
    /// resource policy forbids backups.
    pub forensic_backup: Option<bool>,
    /// Where keys files for `--scope keys` may be read from S3, as `s3://BUCKET/PREFIX`: the
    /// generated policies grant s3:GetObject there, and a keys object elsewhere is refused.
    pub keys_location: Option<String>,
    /// The S3 bucket `--scope window` writes its incremental export to.
    pub export_bucket: Option<String>,
    /// The key prefix of that export in the bucket.
    pub export_prefix: Option<String>,
}

impl TableOptions {
    /// Where a window's export is written, as `s3://BUCKET/PREFIX`: what the policies grant.
    pub fn export_location(&self) -> Option<String> {
        let prefix = self.export_prefix.as_deref().unwrap_or_default();
        Some(format!("s3://{}/{prefix}", self.export_bucket.as_ref()?))
    }

    /// `self` where set, else `fallback`.
    pub fn or(&self, fallback: &TableOptions) -> TableOptions {
        TableOptions {
            segments: self.segments.or(fallback.segments),
            write_concurrency: self.write_concurrency.or(fallback.write_concurrency),
            scan_page_limit: self.scan_page_limit.or(fallback.scan_page_limit),
            max_read_rate: self.max_read_rate.or(fallback.max_read_rate),
            max_write_rate: self.max_write_rate.or(fallback.max_write_rate),
            sensitive: self.sensitive.or(fallback.sensitive),
            forensic_backup: self.forensic_backup.or(fallback.forensic_backup),
            keys_location: self
                .keys_location
                .clone()
                .or(fallback.keys_location.clone()),
            export_bucket: self
                .export_bucket
                .clone()
                .or(fallback.export_bucket.clone()),
            export_prefix: self
                .export_prefix
                .clone()
                .or(fallback.export_prefix.clone()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The physical table name.
    pub name: String,
    /// Why this table must never be restored by the tool; its presence excludes the table.
    pub excluded: Option<String>,
    /// The environment whose recovery mode must be on before this table is restored.
    pub environment: Option<String>,
    /// The customer managed KMS key the table is encrypted with, as an ARN: `stack` grants its
    /// function that key, through DynamoDB alone.
    pub kms_key: Option<String>,
    #[serde(flatten)]
    pub options: TableOptions,
}

/// A `--table` argument after looking it up in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTable {
    pub logical: Option<String>,
    pub physical: String,
    pub options: TableOptions,
    pub environment: Option<String>,
}

/// `[environments.<Env>]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSection {
    /// Functions of the environment start with this [default: `"<Env>-"`, as in the seed].
    pub function_prefix: Option<String>,
    /// Only functions carrying all these tags are the environment's.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Name patterns (`*` wildcards) left running [default: "*DisasterRecovery*"].
    pub exclude: Option<Vec<String>>,
    /// Also disable the functions' enabled event source mappings [default: true].
    pub disable_event_source_mappings: Option<bool>,
    /// Function name patterns (`*` wildcards) whose mappings on DynamoDB streams are replaced at
    /// `recovery-mode end` by twins at `LATEST`, so they never see the recovery's writes.
    #[serde(default)]
    pub skip_recovery_events: Vec<String>,
}

/// An environment with its defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentConfig {
    pub function_prefix: String,
    pub tags: BTreeMap<String, String>,
    pub exclude: Vec<String>,
    pub disable_event_source_mappings: bool,
    pub skip_recovery_events: Vec<String>,
}

impl Config {
    /// Reads `explicit`, or [`DEFAULT_FILE`] when it exists, or returns an empty config.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from(DEFAULT_FILE);
                if !p.exists() {
                    return Ok(Config::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::invalid(
                "config",
                format!(
                    "cannot read {}: {e}; pass an existing file with --config",
                    path.display()
                ),
            )
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            Error::Invalid { message, .. } => {
                Error::invalid("config", format!("{}: {message}", path.display()))
            }
            other => other,
        })?;
        config.path = Some(path);
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            Error::invalid(
                "config",
                format!("{e}; see examples/compact-connect.toml for the format"),
            )
        })?;
        let places = config.tables.values().map(|t| &t.options.keys_location);
        for place in places.chain([&config.defaults.keys_location]).flatten() {
            crate::validate::S3Uri::location(place)?;
        }
        for (logical, t) in &config.tables {
            crate::validate::table_name(&format!("config tables.{logical}.name"), &t.name)?;
            if let Some(env) = &t.environment
                && !config.environments.contains_key(env)
            {
                return Err(Error::invalid(
                    "config",
                    format!(
                        "tables.{logical}.environment is {env:?}, but there is no [environments.{env}] section"
                    ),
                ));
            }
        }
        config.text = text.to_string();
        Ok(config)
    }

    /// The config of one table alone (`Some(logical)`), or of one environment alone, as TOML:
    /// the table's section, `[defaults]` and its environment's section, so that a function built
    /// for it knows nothing of the other tables.
    pub fn excerpt(&self, logical: Option<&str>, environment: Option<&str>) -> Result<String> {
        let mut all: toml::Table =
            toml::from_str(&self.text).map_err(|e| Error::invalid("config", e.to_string()))?;
        let mut section = |group: &str, name: &str| {
            all.get_mut(group)
                .and_then(|t| t.as_table_mut())
                .and_then(|t| t.remove(name))
                .ok_or_else(|| {
                    Error::invalid("config", format!("[{group}.{name}] is not in the config"))
                })
        };
        let mut out = toml::Table::new();
        let mut environment = environment.map(str::to_string);
        if let Some(logical) = logical {
            let table = section("tables", logical)?;
            environment = table
                .get("environment")
                .and_then(|e| e.as_str())
                .map(str::to_string);
            out.insert(
                "tables".into(),
                toml::Table::from_iter([(logical.to_string(), table)]).into(),
            );
        }
        if let (None, Some(env)) = (logical, &environment) {
            // An environment's function knows its tables' names alone: `recovery-mode end`
            // refuses while one of them is being restored.
            let tables: toml::Table = self
                .tables
                .iter()
                .filter(|(_, t)| t.environment.as_deref() == Some(env.as_str()))
                .map(|(logical, t)| {
                    let entry = toml::Table::from_iter([
                        ("name".to_string(), toml::Value::from(t.name.clone())),
                        ("environment".to_string(), toml::Value::from(env.clone())),
                    ]);
                    (logical.clone(), entry.into())
                })
                .collect();
            if !tables.is_empty() {
                out.insert("tables".into(), tables.into());
            }
        }
        if let Some(env) = environment {
            let section = section("environments", &env)?;
            out.insert(
                "environments".into(),
                toml::Table::from_iter([(env, section)]).into(),
            );
        }
        if let Some(d) = all.remove("defaults") {
            out.insert("defaults".into(), d);
        }
        toml::to_string(&out).map_err(|e| Error::invalid("config", e.to_string()))
    }

    pub fn describe_path(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the config".into())
    }

    /// Resolves a logical or physical name. With tables configured, anything else is refused, as
    /// is an excluded table.
    pub fn resolve(&self, field: &str, name: &str) -> Result<ResolvedTable> {
        if self.tables.is_empty() {
            crate::validate::table_name(field, name)?;
            return Ok(ResolvedTable {
                logical: None,
                physical: name.to_string(),
                options: self.defaults.clone(),
                environment: None,
            });
        }
        let found = self
            .tables
            .get_key_value(name)
            .or_else(|| self.tables.iter().find(|(_, t)| t.name == name));
        let Some((logical, table)) = found else {
            let known: Vec<&str> = self.tables.keys().map(String::as_str).collect();
            return Err(Error::invalid(
                field,
                format!(
                    "{name:?} is not a table configured in {}; configured: {}. Use one of those \
                     names, or add the table to the file",
                    self.describe_path(),
                    known.join(", ")
                ),
            ));
        };
        if let Some(reason) = &table.excluded {
            return Err(self.excluded(field, logical, table, reason));
        }
        Ok(ResolvedTable {
            logical: Some(logical.clone()),
            physical: table.name.clone(),
            options: table.options.or(&self.defaults),
            environment: table.environment.clone(),
        })
    }

    /// The configured table a name stands for: its logical or physical name, or a temporary
    /// table or forensic backup name derived from either (they hold the same data).
    fn lookup(&self, name: &str) -> Option<(&String, &TableConfig)> {
        let find = |n: &str| {
            self.tables
                .get_key_value(n)
                .or_else(|| self.tables.iter().find(|(_, t)| t.name == n))
        };
        find(name).or_else(|| crate::validate::derived_from(name).and_then(find))
    }

    /// For any command that reads or writes `name`, as any role (source, dest, either side of a
    /// verify or diff): refuses an excluded table, with the configured reason, and says whether
    /// the data is sensitive. A table the config does not name gets the defaults.
    pub fn guard(&self, field: &str, name: &str) -> Result<bool> {
        let Some((logical, table)) = self.lookup(name) else {
            return Ok(self.defaults.sensitive.unwrap_or(false));
        };
        if let Some(reason) = &table.excluded {
            return Err(self.excluded(field, logical, table, reason));
        }
        Ok(self.is_sensitive(name))
    }

    /// Whether the config marks the table `name` stands for sensitive, excluded or not.
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.lookup(name)
            .map(|(_, t)| t.options.or(&self.defaults))
            .unwrap_or_else(|| self.defaults.clone())
            .sensitive
            .unwrap_or(false)
    }

    fn excluded(&self, field: &str, logical: &str, table: &TableConfig, reason: &str) -> Error {
        Error::invalid(
            field,
            format!(
                "{logical} ({}) is excluded from disaster recovery in {}: {reason}. dynamo-dr \
                 neither reads nor writes it; remove `excluded` from its section only after the \
                 review the reason asks for",
                table.name,
                self.describe_path()
            ),
        )
    }

    /// The physical names of the tables tied to environment `env`.
    pub fn tables_of(&self, env: &str) -> Vec<String> {
        self.tables
            .values()
            .filter(|t| t.environment.as_deref() == Some(env))
            .map(|t| t.name.clone())
            .collect()
    }

    /// The environment a physical table is tied to, if the config says so.
    pub fn environment_of(&self, physical: &str) -> Option<String> {
        self.tables
            .values()
            .find(|t| t.name == physical)
            .and_then(|t| t.environment.clone())
    }

    /// The environment's settings. With environments configured, an unlisted name is refused (a
    /// typo must not pause nothing, or the wrong functions); with none, the seed's defaults apply.
    pub fn environment(&self, name: &str) -> Result<EnvironmentConfig> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(Error::invalid(
                "--environment",
                format!("{name:?} is not an environment name such as Prod"),
            ));
        }
        let section = match self.environments.get(name) {
            Some(s) => s.clone(),
            None if self.environments.is_empty() => EnvironmentSection::default(),
            None => {
                let known: Vec<&str> = self.environments.keys().map(String::as_str).collect();
                return Err(Error::invalid(
                    "--environment",
                    format!(
                        "{name:?} is not configured in {}; configured: {}",
                        self.describe_path(),
                        known.join(", ")
                    ),
                ));
            }
        };
        let function_prefix = section
            .function_prefix
            .unwrap_or_else(|| format!("{name}-"));
        // An empty prefix (or a wildcard) would make every function of the account the
        // environment's: recovery mode would pause them all.
        if function_prefix.trim().is_empty() || function_prefix.contains(['*', '?']) {
            return Err(Error::invalid(
                "function_prefix",
                format!(
                    "{function_prefix:?} in [environments.{name}] of {} would match every \
                     function in the account; give the environment's own prefix, e.g. \
                     function_prefix = \"{name}-\"",
                    self.describe_path()
                ),
            ));
        }
        Ok(EnvironmentConfig {
            function_prefix,
            tags: section.tags,
            exclude: section
                .exclude
                .unwrap_or_else(|| vec!["*DisasterRecovery*".into()]),
            disable_event_source_mappings: section.disable_event_source_mappings.unwrap_or(true),
            skip_recovery_events: section.skip_recovery_events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [defaults]
        segments = 4

        [tables.ProviderTable]
        name = "Prod-PersistentStack-ProviderTable00A96798-C6VX9JVDOYGN"
        segments = 16

        [tables.SSNTable]
        name = "Prod-SSNStack-SSNTable-ABC"
        excluded = "holds SSNs; needs additional security review"
    "#;

    #[test]
    fn resolves_logical_and_physical_names_with_layered_options() {
        let c = Config::parse(SAMPLE).unwrap();
        let by_logical = c.resolve("table", "ProviderTable").unwrap();
        let by_physical = c
            .resolve(
                "table",
                "Prod-PersistentStack-ProviderTable00A96798-C6VX9JVDOYGN",
            )
            .unwrap();
        assert_eq!(by_logical, by_physical);
        assert_eq!(by_logical.options.segments, Some(16));
        assert_eq!(by_logical.logical.as_deref(), Some("ProviderTable"));
    }

    #[test]
    fn an_excluded_table_stays_sensitive_and_is_refused_by_any_name() {
        let c = Config::parse(
            "[tables.SSN]\nname = \"Prod-SSN\"\nsensitive = true\nexcluded = \"review\"\n",
        )
        .unwrap();
        for name in [
            "SSN",
            "Prod-SSN",
            "DR-TEMP-Prod-SSN.inc-1",
            "DR-FORENSIC-SSN.inc-1",
        ] {
            assert!(c.is_sensitive(name), "{name}");
            let e = c.guard("source", name).unwrap_err().to_string();
            assert!(e.contains("review"), "{name}: {e}");
        }
        assert!(!c.guard("dest", "Scratch").unwrap());
    }

    #[test]
    fn refuses_excluded_and_unknown_tables() {
        let c = Config::parse(SAMPLE).unwrap();
        let e = c.resolve("table", "SSNTable").unwrap_err().to_string();
        assert!(e.contains("excluded") && e.contains("holds SSNs"), "{e}");
        let e = c.resolve("table", "Nope").unwrap_err().to_string();
        assert!(e.contains("ProviderTable, SSNTable"), "{e}");
    }

    #[test]
    fn environments_default_to_the_seed_and_refuse_typos() {
        let bare = Config::default().environment("Prod").unwrap();
        assert_eq!(bare.function_prefix, "Prod-");
        assert_eq!(bare.exclude, ["*DisasterRecovery*"]);
        assert!(bare.disable_event_source_mappings);
        assert!(
            bare.skip_recovery_events.is_empty(),
            "every consumer replays by default"
        );
        let c = Config::parse(
            "[environments.Prod]\nfunction_prefix = \"prod-app-\"\ntags = { team = \"dr\" }\n\
             skip_recovery_events = [\"*Mailer*\"]\n",
        )
        .unwrap();
        let prod = c.environment("Prod").unwrap();
        assert_eq!(prod.function_prefix, "prod-app-");
        assert_eq!(prod.skip_recovery_events, ["*Mailer*"]);
        assert!(
            c.environment("Prdo")
                .unwrap_err()
                .to_string()
                .contains("configured: Prod")
        );
        let e = Config::parse("[tables.A]\nname = \"abc\"\nenvironment = \"Nope\"\n").unwrap_err();
        assert!(e.to_string().contains("[environments.Nope]"), "{e}");
    }

    #[test]
    fn refuses_unknown_keys() {
        let e = Config::parse("[tables.A]\nname = \"abc\"\nsegmnts = 3\n").unwrap_err();
        assert!(e.to_string().contains("segmnts"), "{e}");
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../examples/compact-connect.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.tables.len(), 6);
        assert_eq!(
            c.environment_of("Prod-PersistentStack-DataEventTable00A96798-C6VX9JVDOYGN")
                .as_deref(),
            Some("Prod")
        );
        assert!(c.resolve("table", "SSNTable").is_err());
        for t in [
            "TransactionHistoryTable",
            "ProviderTable",
            "CompactConfigurationTable",
            "DataEventTable",
            "UsersTable",
        ] {
            assert!(c.resolve("table", t).is_ok(), "{t}");
        }
    }
}
