//! Encryption of a sensitive table's checkpoint keys in the journal: AES-256-GCM under a key the
//! operator provides, bound to the execution id so a sealed key cannot be moved to another record.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Where the key comes from when `--journal-key-file` is not given.
pub const KEY_ENV: &str = "DYNAMO_DR_JOURNAL_KEY";

const NONCE_LEN: usize = 12;

/// A 256-bit key, zeroed when dropped (the cipher's key schedule too: aes-gcm's `zeroize`).
/// Debug does not print it.
#[derive(Clone)]
pub struct JournalKey {
    cipher: Aes256Gcm,
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for JournalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalKey(..)")
    }
}

impl JournalKey {
    /// 64 hexadecimal characters, as `openssl rand -hex 32` prints.
    pub fn from_hex(text: &str, origin: &str) -> Result<JournalKey> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).unwrap_or_default());
        if bytes.len() != 32 {
            return Err(Error::invalid(
                "journal key",
                format!(
                    "{origin} must hold 64 hexadecimal characters (a 256-bit key); make one with \
                     `openssl rand -hex 32` and keep it with the incident's secrets"
                ),
            ));
        }
        JournalKey::from_bytes(&bytes)
    }

    /// A key from KMS GenerateDataKey's 32 plaintext bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<JournalKey> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::Journal(format!("a data key must be 32 bytes, not {}", bytes.len()))
        })?;
        let bytes = Zeroizing::new(key);
        Ok(JournalKey {
            cipher: Aes256Gcm::new(bytes.as_ref().into()),
            bytes,
        })
    }

    /// The key under which this key's sensitive tables' keys are digested for display: derived,
    /// so the encryption key itself is never used for anything but encryption.
    pub fn digest_key(&self) -> crate::digest::KeyDigest {
        crate::digest::KeyDigest::derived(self.bytes.as_ref())
    }

    /// From `--journal-key-file`, else the environment; `None` when neither is set.
    pub fn load(file: Option<&Path>) -> Result<Option<JournalKey>> {
        if let Some(path) = file {
            refuse_if_readable_by_others(path)?;
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(
                    "--journal-key-file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?);
            return JournalKey::from_hex(&text, &path.display().to_string()).map(Some);
        }
        match std::env::var(KEY_ENV) {
            Ok(text) => JournalKey::from_hex(&text, KEY_ENV).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// `{"sealed": hex(nonce ‖ ciphertext)}` for `value`, bound to `context`.
    pub fn seal(&self, value: &Value, context: &str) -> Result<Value> {
        // From the operating system's CSPRNG: a repeated nonce under one key breaks AES-GCM.
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let plain = Zeroizing::new(value.to_string());
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::Journal("encrypting a checkpoint key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(json!({ "sealed": hex::encode(out) }))
    }

    /// The value [`JournalKey::seal`] sealed, or an error naming what is wrong.
    pub fn open(&self, value: &Value, context: &str) -> Result<Value> {
        let bad = |why: &str| {
            Error::invalid(
                "journal key",
                format!(
                    "cannot decrypt the journal's checkpoint for {context}: {why}; pass the key the run was started with"
                ),
            )
        };
        let bytes = sealed_text(value)
            .and_then(|t| hex::decode(t).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(|| bad("the sealed value is damaged"))?;
        let (nonce, cipher) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: cipher,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| bad("wrong key"))?;
        serde_json::from_slice(&plain).map_err(|_| bad("the plaintext is not JSON"))
    }
}

/// As ssh does with private keys: a key file that group or others can read is refused.
fn refuse_if_readable_by_others(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| {
            Error::invalid(
                "--journal-key-file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::invalid(
            "--journal-key-file",
            format!(
                "{} is readable by others (mode {:04o}); a journal key must be private to its \
                 owner: run `chmod 600 {}` and try again",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

fn sealed_text(value: &Value) -> Option<&str> {
    value.get("sealed").and_then(Value::as_str)
}

/// Whether a stored checkpoint key is sealed.
pub fn is_sealed(value: &Value) -> bool {
    sealed_text(value).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let key = JournalKey::from_hex(KEY, "test").unwrap();
        let value = json!({"pk": {"S": "123-45-6789"}});
        let sealed = key.seal(&value, "inc.T").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.to_string().contains("6789"));
        assert_eq!(key.open(&sealed, "inc.T").unwrap(), value);
        assert!(key.open(&sealed, "other.T").is_err());
        let other = JournalKey::from_hex(&KEY.replace("1f", "ff"), "test").unwrap();
        assert!(other.open(&sealed, "inc.T").is_err());
        // A fresh nonce each time.
        assert_ne!(key.seal(&value, "inc.T").unwrap(), sealed);
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, KEY).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = JournalKey::load(Some(&path)).unwrap_err();
            assert!(e.to_string().contains("chmod 600"), "{mode:o}: {e}");
            assert_eq!(e.exit_status(), crate::ExitStatus::Refused);
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(JournalKey::load(Some(&path)).unwrap().is_some());
    }

    #[test]
    fn refuses_keys_of_the_wrong_form() {
        for bad in [
            "",
            "abc",
            &KEY[..62],
            &format!("{KEY}00"),
            &KEY.replace('0', "g"),
        ] {
            let e = JournalKey::from_hex(bad, "--journal-key-file k").unwrap_err();
            assert!(e.to_string().contains("64 hexadecimal"), "{e}");
        }
    }
}
