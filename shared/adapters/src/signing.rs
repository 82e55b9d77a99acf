//! Signed webhooks, the way the common payment service providers sign them (Stripe's scheme).
//!
//! The PSP sends `Psp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…]`, each `v1` an
//! HMAC-SHA256 under a shared secret of `"<t>.<raw body>"`. Several `v1` let a secret be rotated
//! without downtime: while the PSP signs with the old and the new secret, a receiver holding
//! either accepts. A timestamp more than [`TOLERANCE_SECONDS`] away from this system's clock, in
//! either direction, is refused, so a captured request cannot be replayed later; signatures are
//! compared in constant time (`hmac`'s `verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const PSP_SIGNATURE_HEADER: &str = "psp-signature";

/// How far the signed timestamp may be from this system's clock, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request carries no signature")]
    Missing,
    #[error("the signature header is not t=<seconds>,v1=<hex>[,v1=<hex>…]")]
    Malformed,
    #[error(
        "the signature's timestamp is more than {TOLERANCE_SECONDS} s from this system's clock"
    )]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex signature of `body` at `timestamp` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The header value for `body` signed at `timestamp` under each of `secrets`.
pub fn signature_header(secrets: &[&[u8]], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&sign(secret, timestamp, body));
    }
    header
}

/// Checks `header` over `body` against `secret` at `now` (unix seconds).
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", hex_signature)) => {
                signatures.push(hex::decode(hex_signature).map_err(|_| SignatureError::Malformed)?)
            }
            // Other schemes (`v0`, a PSP's test signatures) are not ours to check.
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() || signatures.len() > 8 {
        return Err(SignatureError::Malformed);
    }
    // abs_diff: no timestamp a sender picks can overflow the subtraction.
    if now.abs_diff(timestamp) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    if signatures
        .iter()
        .any(|signature| expected.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_590_400;
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;

    #[test]
    fn a_signature_holds_for_its_body_secret_and_time_window() {
        let header = signature_header(&[b"new-secret"], NOW, BODY);
        assert_eq!(verify(b"new-secret", Some(&header), BODY, NOW), Ok(()));
        assert_eq!(
            verify(b"new-secret", Some(&header), BODY, NOW + TOLERANCE_SECONDS),
            Ok(())
        );
        assert_eq!(
            verify(b"new-secret", Some(&header), br#"{"id":"evt_2"}"#, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other-secret", Some(&header), BODY, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"new-secret",
                Some(&header),
                BODY,
                NOW + TOLERANCE_SECONDS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(
                b"new-secret",
                Some(&header),
                BODY,
                NOW - TOLERANCE_SECONDS - 1
            ),
            Err(SignatureError::Stale),
            "a timestamp from the future is refused too"
        );
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let header = signature_header(&[b"old-secret", b"new-secret"], NOW, BODY);
        assert_eq!(verify(b"old-secret", Some(&header), BODY, NOW), Ok(()));
        assert_eq!(verify(b"new-secret", Some(&header), BODY, NOW), Ok(()));
        let old_only = signature_header(&[b"old-secret"], NOW, BODY);
        assert_eq!(
            verify(b"new-secret", Some(&old_only), BODY, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in ["", "t=abc,v1=00", "v1=00", "t=1", "t=1,v1=zz", "garbage"] {
            assert_eq!(
                verify(b"s", Some(header), BODY, 1),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
        assert_eq!(
            verify(b"s", Some(&format!("t={},v1=00", i64::MIN)), BODY, NOW),
            Err(SignatureError::Stale),
            "the most negative timestamp neither overflows nor passes"
        );
        assert_eq!(verify(b"s", None, BODY, 1), Err(SignatureError::Missing));
    }
}
