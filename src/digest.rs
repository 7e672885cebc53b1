//! Canonical item digests and order-independent table fingerprints: the proof that two tables hold
//! the same items.
//!
//! The canonical form does not depend on map key order or set member order, and numbers are
//! normalised as DynamoDB normalises them, so two equal items always digest alike.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest as _, Sha256};

use crate::item::Item;

/// SHA-256 of an item's canonical encoding.
pub fn item_digest(item: &Item) -> [u8; 32] {
    let mut h = Sha256::new();
    encode_map(&mut h, item);
    h.finalize().into()
}

/// A DynamoDB number as (negative, significant digits, exponent), value = ±digits × 10^exponent;
/// `None` for text that is not a number.
fn normalize_number(text: &str) -> Option<(bool, String, i64)> {
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut digits: String = format!("{int}{frac}");
    let mut exponent = exp - frac.len() as i64;
    let trimmed = digits.trim_end_matches('0');
    exponent += (digits.len() - trimmed.len()) as i64;
    digits = trimmed.trim_start_matches('0').to_string();
    if digits.is_empty() {
        return Some((false, "0".into(), 0));
    }
    Some((neg, digits, exponent))
}

/// The canonical text of a number: `-digitsEexp`, or the original text if it is not a number.
pub fn canonical_number(text: &str) -> String {
    match normalize_number(text) {
        Some((neg, digits, exp)) => format!("{}{digits}E{exp}", if neg { "-" } else { "" }),
        None => format!("?{text}"),
    }
}

fn put_bytes(h: &mut Sha256, tag: u8, bytes: &[u8]) {
    h.update([tag]);
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn put_set(h: &mut Sha256, tag: u8, mut members: Vec<Vec<u8>>) {
    members.sort();
    members.dedup();
    h.update([tag]);
    h.update((members.len() as u64).to_le_bytes());
    for m in members {
        put_bytes(h, b'.', &m);
    }
}

fn encode_map(h: &mut Sha256, m: &HashMap<String, AttributeValue>) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    h.update([b'M']);
    h.update((keys.len() as u64).to_le_bytes());
    for k in keys {
        put_bytes(h, b'k', k.as_bytes());
        encode(h, &m[k]);
    }
}

fn encode(h: &mut Sha256, v: &AttributeValue) {
    match v {
        AttributeValue::S(s) => put_bytes(h, b'S', s.as_bytes()),
        AttributeValue::N(n) => put_bytes(h, b'N', canonical_number(n).as_bytes()),
        AttributeValue::B(b) => put_bytes(h, b'B', b.as_ref()),
        AttributeValue::Bool(b) => h.update([if *b { b'T' } else { b'F' }]),
        AttributeValue::Null(_) => h.update([b'0']),
        AttributeValue::L(items) => {
            h.update([b'L']);
            h.update((items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| encode(h, i));
        }
        AttributeValue::M(m) => encode_map(h, m),
        AttributeValue::Ss(s) => {
            put_set(h, b's', s.iter().map(|x| x.as_bytes().to_vec()).collect())
        }
        AttributeValue::Ns(s) => put_set(
            h,
            b'n',
            s.iter().map(|x| canonical_number(x).into_bytes()).collect(),
        ),
        AttributeValue::Bs(s) => put_set(h, b'b', s.iter().map(|x| x.as_ref().to_vec()).collect()),
        // A type newer than this SDK: its debug form still distinguishes values.
        other => put_bytes(h, b'?', format!("{other:?}").as_bytes()),
    }
}

/// Item count plus the sum of item digests modulo 2^256: independent of order, so segments can be
/// fingerprinted in parallel and merged in any order, and (unlike XOR) duplicates do not cancel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub count: u64,
    sum: [u64; 4],
}

impl Fingerprint {
    pub fn add(&mut self, digest: &[u8; 32]) {
        self.count += 1;
        let mut carry = 0u128;
        for (i, lane) in self.sum.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&digest[i * 8..i * 8 + 8]);
            let s = u128::from(*lane) + u128::from(u64::from_le_bytes(word)) + carry;
            *lane = s as u64;
            carry = s >> 64;
        }
    }

    pub fn merge(&mut self, other: &Fingerprint) {
        self.count += other.count;
        let mut carry = 0u128;
        for (lane, o) in self.sum.iter_mut().zip(other.sum) {
            let s = u128::from(*lane) + u128::from(o) + carry;
            *lane = s as u64;
            carry = s >> 64;
        }
    }

    /// Hex of the sum, for reports.
    pub fn hex(&self) -> String {
        self.sum.iter().rev().map(|w| format!("{w:016x}")).collect()
    }
}

/// How a sensitive table's keys are named without being revealed: HMAC-SHA256 under a secret
/// key, so a key cannot be found by hashing guesses (an SSN-shaped key space is searched in
/// seconds against a plain hash). Only a holder of the journal key can look a digest up
/// (`dynamo-dr key-digest`). The key is zeroed when dropped.
#[derive(Clone)]
pub struct KeyDigest(zeroize::Zeroizing<[u8; 32]>);

/// Domain separation: the digest key is derived from, never equal to, the journal key.
const KEY_DIGEST_LABEL: &[u8] = b"dynamo-dr key digest v1";

impl KeyDigest {
    /// Derived from a journal key's bytes.
    pub fn derived(journal_key: &[u8]) -> KeyDigest {
        KeyDigest(zeroize::Zeroizing::new(hmac_sha256(
            journal_key,
            KEY_DIGEST_LABEL,
        )))
    }

    /// A key nobody holds, for a run with no journal key: its digests correlate within the run's
    /// own output and can be looked up by nobody.
    pub fn ephemeral() -> KeyDigest {
        use aes_gcm::aead::rand_core::RngCore;
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        aes_gcm::aead::OsRng.fill_bytes(key.as_mut());
        KeyDigest(key)
    }

    /// `"key-hmac:<24 hex>"` for a key's DynamoDB JSON text.
    pub fn name(&self, key_text: &str) -> String {
        let mac = hmac_sha256(self.0.as_ref(), key_text.as_bytes());
        format!("\"key-hmac:{}\"", hex::encode(&mac[..12]))
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    #[test]
    fn key_digests_need_the_key() {
        let key = [7u8; 32];
        let text = r#"{"ssn":{"S":"123-45-6789"}}"#;
        let a = KeyDigest::derived(&key).name(text);
        assert_eq!(a, KeyDigest::derived(&key).name(text));
        assert!(a.starts_with("\"key-hmac:") && !a.contains("6789"), "{a}");
        // Not the plain hash an attacker could compute, nor another key's digest.
        let plain = hex::encode(&Sha256::digest(text.as_bytes())[..12]);
        assert!(!a.contains(&plain));
        assert_ne!(a, KeyDigest::derived(&[8u8; 32]).name(text));
        assert_ne!(a, KeyDigest::ephemeral().name(text));
        // HMAC-SHA256 as RFC 4231 test case 2 defines it.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
    use proptest::prelude::*;

    #[test]
    fn numbers_normalise_as_dynamodb_does() {
        for (a, b) in [
            ("1.50", "1.5"),
            ("0150", "150"),
            ("1e3", "1000"),
            ("-0.0", "0"),
            ("+7", "7"),
            ("12.3400E-2", "0.1234"),
        ] {
            assert_eq!(canonical_number(a), canonical_number(b), "{a} vs {b}");
        }
        assert_ne!(canonical_number("15"), canonical_number("1.5"));
        assert_ne!(canonical_number("-1"), canonical_number("1"));
    }

    fn scalar() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            ".{0,12}".prop_map(AttributeValue::S),
            (-1_000_000i64..1_000_000, 0u32..4)
                .prop_map(|(n, scale)| AttributeValue::N(format_scaled(n, scale))),
            proptest::collection::vec(any::<u8>(), 0..8)
                .prop_map(|b| AttributeValue::B(Blob::new(b))),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            proptest::collection::btree_set("[a-z]{1,4}", 1..4)
                .prop_map(|s| AttributeValue::Ss(s.into_iter().collect())),
            proptest::collection::btree_set(-1000i64..1000, 1..4)
                .prop_map(|s| AttributeValue::Ns(s.into_iter().map(|n| n.to_string()).collect())),
            proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 1..4), 1..4)
                .prop_map(|s| AttributeValue::Bs(s.into_iter().map(Blob::new).collect())),
        ]
    }

    fn format_scaled(n: i64, scale: u32) -> String {
        let d = 10i64.pow(scale);
        let sign = if n < 0 { "-" } else { "" };
        if scale == 0 {
            n.to_string()
        } else {
            format!(
                "{sign}{}.{:0w$}",
                n.abs() / d,
                n.abs() % d,
                w = scale as usize
            )
        }
    }

    fn value() -> impl Strategy<Value = AttributeValue> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
                proptest::collection::hash_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(AttributeValue::M),
            ]
        })
    }

    fn item() -> impl Strategy<Value = Item> {
        proptest::collection::hash_map("[a-z]{1,5}", value(), 1..6)
    }

    /// The same item written differently: maps rebuilt in reverse order, sets reversed, numbers
    /// padded with zeros.
    fn rewrite(v: &AttributeValue) -> AttributeValue {
        match v {
            AttributeValue::N(n) => AttributeValue::N(pad(n)),
            AttributeValue::Ss(s) => AttributeValue::Ss(s.iter().rev().cloned().collect()),
            AttributeValue::Ns(s) => AttributeValue::Ns(s.iter().rev().map(|n| pad(n)).collect()),
            AttributeValue::Bs(s) => AttributeValue::Bs(s.iter().rev().cloned().collect()),
            AttributeValue::L(l) => AttributeValue::L(l.iter().map(rewrite).collect()),
            AttributeValue::M(m) => AttributeValue::M(rewrite_map(m)),
            other => other.clone(),
        }
    }

    fn rewrite_map(m: &HashMap<String, AttributeValue>) -> HashMap<String, AttributeValue> {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        keys.reverse();
        let mut out = HashMap::with_capacity(m.len() * 2);
        for k in keys {
            out.insert(k.clone(), rewrite(&m[k]));
        }
        out
    }

    fn pad(n: &str) -> String {
        let (sign, body) = n.strip_prefix('-').map_or(("", n), |b| ("-", b));
        if body.contains('.') {
            format!("{sign}00{body}00")
        } else {
            format!("{sign}00{body}.000")
        }
    }

    /// A different value of the same attribute.
    fn mutate(v: &AttributeValue) -> AttributeValue {
        match v {
            AttributeValue::S(s) => AttributeValue::S(format!("{s}x")),
            AttributeValue::N(n) => AttributeValue::N(format!("{n}1")),
            AttributeValue::B(b) => AttributeValue::B(Blob::new([b.as_ref(), &[1]].concat())),
            AttributeValue::Bool(b) => AttributeValue::Bool(!b),
            AttributeValue::Null(_) => AttributeValue::S(String::new()),
            AttributeValue::L(l) => {
                AttributeValue::L([l.clone(), vec![AttributeValue::Null(true)]].concat())
            }
            AttributeValue::M(m) => {
                let mut m = m.clone();
                m.insert("zzzz".into(), AttributeValue::Null(true));
                AttributeValue::M(m)
            }
            AttributeValue::Ss(s) => {
                AttributeValue::Ss([s.clone(), vec!["zzzzzz".into()]].concat())
            }
            AttributeValue::Ns(s) => {
                AttributeValue::Ns([s.clone(), vec!["123456789".into()]].concat())
            }
            AttributeValue::Bs(s) => {
                AttributeValue::Bs([s.clone(), vec![Blob::new(vec![9, 9, 9, 9, 9])]].concat())
            }
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn digest_ignores_map_order_set_order_and_number_format(i in item()) {
            prop_assert_eq!(item_digest(&i), item_digest(&rewrite_map(&i)));
        }

        #[test]
        fn digest_changes_when_any_single_attribute_changes(i in item(), pick in any::<prop::sample::Index>()) {
            let mut keys: Vec<&String> = i.keys().collect();
            keys.sort();
            let key = keys[pick.index(keys.len())].clone();
            let mut changed = i.clone();
            changed.insert(key.clone(), mutate(&i[&key]));
            prop_assert_ne!(item_digest(&i), item_digest(&changed));
            let mut removed = i.clone();
            removed.remove(&key);
            prop_assert_ne!(item_digest(&i), item_digest(&removed));
        }

        #[test]
        fn fingerprints_merge_in_any_order(items in proptest::collection::vec(item(), 0..12), split in any::<prop::sample::Index>()) {
            let digests: Vec<[u8; 32]> = items.iter().map(item_digest).collect();
            let mut whole = Fingerprint::default();
            digests.iter().for_each(|d| whole.add(d));
            let at = if digests.is_empty() { 0 } else { split.index(digests.len() + 1) };
            let (mut a, mut b) = (Fingerprint::default(), Fingerprint::default());
            digests[..at].iter().rev().for_each(|d| a.add(d));
            digests[at..].iter().for_each(|d| b.add(d));
            b.merge(&a);
            prop_assert_eq!(whole, b);
        }
    }

    #[test]
    fn duplicates_do_not_cancel() {
        let d = item_digest(&HashMap::from([(
            "a".to_string(),
            AttributeValue::S("x".into()),
        )]));
        let mut twice = Fingerprint::default();
        twice.add(&d);
        twice.add(&d);
        assert_ne!(twice.hex(), Fingerprint::default().hex());
    }
}
