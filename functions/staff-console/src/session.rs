//! The staff session: who signed in, with which scopes, until when — in one cookie the browser
//! cannot read or forge.
//!
//! The cookie is encrypted and authenticated (AES-256-GCM, the `cookie` crate's private jar)
//! with a key derived from the console's secret in Secrets Manager, so nothing in it is readable
//! by the browser or by anyone who copies it out of a log, and a changed byte makes it no session
//! at all. It is `HttpOnly` (no script reads it), `Secure`, `SameSite=Lax` (a cross-site form post
//! carries no session; `Strict` would also drop it on the redirect back from the identity
//! provider, which is a cross-site navigation), and scoped to the console's path.
//!
//! Every form carries a CSRF token: an HMAC of the session's nonce under the same secret, checked
//! in constant time, so a page on another site cannot post a form in a signed-in staff member's
//! name even where the browser would send the cookie.

use chrono::{DateTime, Utc};
use cookie::{Cookie, CookieJar, Key, SameSite};
use hmac::{Hmac, Mac};
use oms_domain::app::Caller;
use oms_domain::ids::CustomerId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "oms_console";
/// The cookie that carries a sign-in in progress (its state and PKCE verifier) to the callback.
pub const SIGN_IN_COOKIE: &str = "oms_console_sign_in";
/// The longest a session lasts, whatever the token's lifetime: a shift.
pub const MAX_SESSION_SECONDS: i64 = 8 * 3600;

/// What the session holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The staff member: the identity provider's subject.
    pub sub: String,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
    /// Random, per session: what the CSRF token is derived from.
    pub nonce: String,
}

impl Session {
    /// The caller the application layer checks scopes on.
    pub fn caller(&self) -> Option<Caller> {
        Some(Caller {
            customer_id: CustomerId::parse(self.sub.as_str()).ok()?,
            scopes: self.scopes.clone(),
        })
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// A sign-in in progress: what the callback checks the identity provider's answer against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub pkce_verifier: String,
    pub started_at: DateTime<Utc>,
}

/// The keys of the session: encryption for the cookies, HMAC for the CSRF tokens, both derived
/// from the console's secret.
#[derive(Clone)]
pub struct SessionKeys {
    cookie: Key,
    csrf: Vec<u8>,
}

impl SessionKeys {
    /// Derives both keys from `secret` (at least 32 bytes; Secrets Manager generates 64).
    pub fn derive(secret: &[u8]) -> Result<Self, &'static str> {
        if secret.len() < 32 {
            return Err("the console's session secret must be at least 32 bytes");
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "an HMAC key")?;
        mac.update(b"oms-console cookie key");
        let first = mac.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "an HMAC key")?;
        mac.update(b"oms-console cookie key, second half");
        let second = mac.finalize().into_bytes();
        let mut master = Vec::with_capacity(64);
        master.extend_from_slice(&first);
        master.extend_from_slice(&second);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "an HMAC key")?;
        mac.update(b"oms-console csrf key");
        Ok(SessionKeys {
            cookie: Key::from(&master),
            csrf: mac.finalize().into_bytes().to_vec(),
        })
    }

    fn csrf_mac(&self, nonce: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.csrf).expect("HMAC takes any key length");
        mac.update(nonce.as_bytes());
        mac
    }

    /// The CSRF token of a session: what every form of its pages carries.
    pub fn csrf_token(&self, session: &Session) -> String {
        hex::encode(self.csrf_mac(&session.nonce).finalize().into_bytes())
    }

    /// Whether `token` is the session's CSRF token, compared in constant time.
    pub fn csrf_valid(&self, session: &Session, token: &str) -> bool {
        match hex::decode(token) {
            Ok(bytes) => self.csrf_mac(&session.nonce).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The private value of `name` in the request's `Cookie` header, decrypted and read, if it is
    /// there and this console wrote it.
    pub fn read<T: for<'de> Deserialize<'de>>(&self, cookie_header: &str, name: &str) -> Option<T> {
        let mut jar = CookieJar::new();
        for cookie in Cookie::split_parse(cookie_header.to_owned()).flatten() {
            jar.add_original(cookie);
        }
        let value = jar.private(&self.cookie).get(name)?;
        serde_json::from_str(value.value()).ok()
    }

    /// A `Set-Cookie` value holding `value` privately under `name`, for `max_age_seconds`.
    pub fn write<T: Serialize>(
        &self,
        name: &'static str,
        value: &T,
        path: &'static str,
        max_age_seconds: i64,
    ) -> String {
        let mut jar = CookieJar::new();
        let text = serde_json::to_string(value).expect("a session serializes");
        jar.private_mut(&self.cookie).add(hardened(
            Cookie::build((name, text)),
            path,
            max_age_seconds,
        ));
        jar.delta()
            .next()
            .map(|c| c.to_string())
            .unwrap_or_default()
    }
}

/// A `Set-Cookie` value that removes the cookie `name`.
pub fn removal(name: &'static str, path: &'static str) -> String {
    hardened(Cookie::build((name, "")), path, 0)
        .build()
        .to_string()
}

fn hardened(
    cookie: cookie::CookieBuilder<'static>,
    path: &'static str,
    max_age_seconds: i64,
) -> cookie::CookieBuilder<'static> {
    cookie
        .path(path)
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys::derive(b"a console secret that is long enough for the keys").unwrap()
    }

    fn session() -> Session {
        Session {
            sub: "staff-ada".into(),
            scopes: vec!["oms:admin".into()],
            expires_at: DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
            nonce: "nonce-1".into(),
        }
    }

    /// The `name=value` part of a `Set-Cookie` value, as a browser sends it back.
    fn sent_back(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn a_session_reads_back_and_its_cookie_is_hardened() {
        let keys = keys();
        let set = keys.write(SESSION_COOKIE, &session(), "/console", 60);
        for attribute in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/console",
            "Max-Age=60",
        ] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        assert!(
            !set.contains("staff-ada"),
            "the cookie's content is encrypted"
        );
        assert_eq!(
            keys.read::<Session>(&sent_back(&set), SESSION_COOKIE),
            Some(session())
        );
    }

    #[test]
    fn a_forged_or_foreign_cookie_is_no_session() {
        let keys = keys();
        let set = keys.write(SESSION_COOKIE, &session(), "/console", 60);
        let mut forged = sent_back(&set);
        forged.pop();
        forged.push('A');
        assert_eq!(keys.read::<Session>(&forged, SESSION_COOKIE), None);
        let other = SessionKeys::derive(b"another console's secret, long enough too").unwrap();
        assert_eq!(
            other.read::<Session>(&sent_back(&set), SESSION_COOKIE),
            None
        );
        let plain = format!(
            "{SESSION_COOKIE}={}",
            serde_json::to_string(&session()).unwrap()
        );
        assert_eq!(keys.read::<Session>(&plain, SESSION_COOKIE), None);
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let keys = keys();
        let token = keys.csrf_token(&session());
        assert!(keys.csrf_valid(&session(), &token));
        let other = Session {
            nonce: "nonce-2".into(),
            ..session()
        };
        assert!(!keys.csrf_valid(&other, &token));
        assert!(!keys.csrf_valid(&session(), ""));
        assert!(!keys.csrf_valid(&session(), "not hex"));
        assert!(SessionKeys::derive(b"short").is_err());
    }
}
