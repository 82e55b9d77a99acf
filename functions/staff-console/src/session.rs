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
use oms_domain::app::Caller;
use oms_domain::ids::CustomerId;
use serde::{Deserialize, Serialize};

pub use oms_adapters::web::{removal, CookieKeys};

/// The console's keys: its secret's, for the purpose `oms-console`.
pub type SessionKeys = CookieKeys;

/// The purpose the console's keys are derived for.
pub const KEYS_PURPOSE: &str = "oms-console";

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
    /// The console page to open once signed in: the one whose request found no live session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Whether `path` is a console page a sign-in may send back to: one of the console's own
/// screens that a link opens (never a form's target, which answers only its form, nor the
/// sign-in itself), by path alone — printable ASCII, no scheme, host, `//` or `\`.
pub fn returnable(path: &str) -> bool {
    if path.len() > 2048
        || !path.bytes().all(|b| (0x21..=0x7e).contains(&b))
        || path.contains("//")
        || path.contains('\\')
    {
        return false;
    }
    let Some(rest) = path.strip_prefix("/console/") else {
        return false;
    };
    let page = rest.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = page.split('/').collect();
    matches!(
        segments.as_slice(),
        ["orders" | "returns" | "inventory" | "locations" | "warehouse" | "exceptions"]
            | ["inventory", _]
            | ["warehouse", "pick-list"]
            | ["exceptions", "dead-letters", _]
    ) || matches!(segments.as_slice(), ["orders", id] if *id != "search" && !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_back_from_its_cookie_and_its_forms_carry_its_token() {
        let keys = SessionKeys::derive(
            b"a console secret that is long enough for the keys",
            KEYS_PURPOSE,
        )
        .unwrap();
        let session = Session {
            sub: "staff-ada".into(),
            scopes: vec!["oms:admin".into()],
            expires_at: DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
            nonce: "nonce-1".into(),
        };
        let set = keys.write(SESSION_COOKIE, &session, "/console", 60);
        let sent = set.split(';').next().unwrap();
        assert_eq!(
            keys.read::<Session>(sent, SESSION_COOKIE),
            Some(session.clone())
        );
        assert!(keys.csrf_valid(&session.nonce, &keys.csrf_token(&session.nonce)));
    }
}
