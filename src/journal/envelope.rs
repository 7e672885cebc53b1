//! Journal keys from KMS (envelope encryption): a fresh 256-bit data key per execution of a
//! sensitive table, stored in the record only encrypted under the operator's KMS key and bound to
//! the execution id, so no operator has to keep or pass a key file.

use aws_smithy_types::Blob;
use aws_smithy_types::base64;

use crate::aws;
use crate::error::{Error, Result};
use crate::journal::WrappedKey;
use crate::journal::seal::JournalKey;

/// The encryption context every data key is bound to: a wrapped key moved to another record
/// does not decrypt.
pub const CONTEXT_KEY: &str = "dynamo-dr:execution-id";

/// A new data key for `execution`, and its wrapped form for the record.
pub async fn new_data_key(
    client: &aws_sdk_kms::Client,
    kms_key: &str,
    execution: &str,
) -> Result<(JournalKey, WrappedKey)> {
    let out = client
        .generate_data_key()
        .key_id(kms_key)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .encryption_context(CONTEXT_KEY, execution)
        .send()
        .await
        .map_err(|e| Error::Aws {
            operation: "GenerateDataKey",
            resource: kms_key.to_string(),
            kind: aws::error_kind(&e),
            message: format!(
                "{}; the role needs kms:GenerateDataKey and kms:Decrypt on it (`dynamo-dr \
                 iam-policy --journal-kms-key ARN …` prints them), or use --journal-key-file",
                aws::describe(&e)
            ),
        })?;
    let (Some(plain), Some(wrapped)) = (out.plaintext(), out.ciphertext_blob()) else {
        return Err(Error::BadState {
            what: format!("KMS key {kms_key}"),
            state: "GenerateDataKey returned no key".into(),
            hint: "try again; nothing was changed".into(),
        });
    };
    let key = JournalKey::from_bytes(plain.as_ref())?;
    Ok((
        key,
        WrappedKey {
            kms_key_id: out.key_id().unwrap_or(kms_key).to_string(),
            ciphertext: base64::encode(wrapped.as_ref()),
        },
    ))
}

/// The data key of `execution`, decrypted by KMS.
pub async fn unwrap(
    client: &aws_sdk_kms::Client,
    wrapped: &WrappedKey,
    execution: &str,
) -> Result<JournalKey> {
    let blob = base64::decode(&wrapped.ciphertext).map_err(|_| {
        Error::Journal(format!(
            "the wrapped journal key of {execution} is damaged (not base64); the record was not changed"
        ))
    })?;
    let out = client
        .decrypt()
        .key_id(&wrapped.kms_key_id)
        .ciphertext_blob(Blob::new(blob))
        .encryption_context(CONTEXT_KEY, execution)
        .send()
        .await
        .map_err(|e| Error::Aws {
            operation: "Decrypt",
            resource: wrapped.kms_key_id.clone(),
            kind: aws::error_kind(&e),
            message: format!(
                "{}; the journal key of {execution} is wrapped under this KMS key: the role needs \
                 kms:Decrypt on it, and the key must be enabled",
                aws::describe(&e)
            ),
        })?;
    let plain = out.plaintext().ok_or_else(|| Error::BadState {
        what: format!("KMS key {}", wrapped.kms_key_id),
        state: "Decrypt returned no plaintext".into(),
        hint: "try again".into(),
    })?;
    JournalKey::from_bytes(plain.as_ref())
}
