//! What the system's browser pages share (the staff console's and the customers'): sessions in
//! cookies the browser can neither read nor forge, and the CSRF tokens of their forms.
//!
//! A cookie is encrypted and authenticated (AES-256-GCM, the `cookie` crate's private jar)
//! with a key derived from the site's secret in Secrets Manager, so nothing in it is readable
//! by the browser or by anyone who copies it out of a log, and a changed byte makes it no
//! session at all. It is `HttpOnly` (no script reads it), `Secure`, `SameSite=Lax` (a
//! cross-site form post carries no session), and scoped to the site's path. Every form carries a
//! CSRF token: an HMAC of the session's random nonce under the same secret, checked in
//! constant time.

use cookie::{Cookie, CookieJar, Key, SameSite};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The keys of a browser session: encryption for its cookies, HMAC for its forms' CSRF tokens,
/// both derived from one secret (in Secrets Manager) and a purpose, so two sites' keys differ
/// even under the same secret.
#[derive(Clone)]
pub struct CookieKeys {
    cookie: Key,
    csrf: Vec<u8>,
}

impl CookieKeys {
    /// Derives both keys from `secret` (at least 32 bytes; Secrets Manager generates 64) for
    /// `purpose` (the site's name: `oms-console`, `oms-shop`).
    pub fn derive(secret: &[u8], purpose: &str) -> Result<Self, &'static str> {
        if secret.len() < 32 {
            return Err("a session secret must be at least 32 bytes");
        }
        let derived = |label: &str| -> Result<Vec<u8>, &'static str> {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "an HMAC key")?;
            mac.update(format!("{purpose} {label}").as_bytes());
            Ok(mac.finalize().into_bytes().to_vec())
        };
        let mut master = derived("cookie key")?;
        master.extend(derived("cookie key, second half")?);
        Ok(CookieKeys {
            cookie: Key::from(&master),
            csrf: derived("csrf key")?,
        })
    }

    fn csrf_mac(&self, nonce: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.csrf).expect("HMAC takes any key length");
        mac.update(nonce.as_bytes());
        mac
    }

    /// The CSRF token of the session whose random `nonce` is given: what every form of its
    /// pages carries.
    pub fn csrf_token(&self, nonce: &str) -> String {
        hex::encode(self.csrf_mac(nonce).finalize().into_bytes())
    }

    /// Whether `token` is the CSRF token of the session with `nonce`, compared in constant
    /// time.
    pub fn csrf_valid(&self, nonce: &str, token: &str) -> bool {
        match hex::decode(token) {
            Ok(bytes) => self.csrf_mac(nonce).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The private value of `name` in the request's `Cookie` header, decrypted and read, if it is
    /// there and these keys wrote it.
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

/// What every page's answer says about itself: only the site's own styles, no scripts, no
/// frames, forms only to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers on every page's answer: the CSP, no sniffing, no framing, no referrer to other
/// sites (`no-referrer` would make the browser send `Origin: null` with the site's own forms,
/// which the origin checks then refuse).
pub const PAGE_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
];

/// Sets the headers every page's answer carries: [`PAGE_HEADERS`], and `no-store` unless the
/// answer says how long it may be kept (pages show orders, names and addresses; an asset says).
/// A page that set its own Content-Security-Policy keeps it: the payment page's
/// ([`payment_page_policy`]), the one page that runs a script.
pub fn harden(headers: &mut lambda_http::http::HeaderMap) {
    use lambda_http::http::{header, HeaderValue};
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    for (name, value) in PAGE_HEADERS {
        if name == "content-security-policy" && headers.contains_key(name) {
            continue;
        }
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// The Content-Security-Policy of a page where the customer pays with the PSP's own script:
/// [`CONTENT_SECURITY_POLICY`], plus the site's own script, the PSP's script and frames from
/// `script_origin` (Stripe.js's card fields and 3-D Secure live in its frames; Stripe's
/// `hooks.stripe.com` shows the bank's challenge), and requests to `api_origin` (where
/// Stripe.js confirms the payment). Nothing inline runs.
pub fn payment_page_policy(script_origin: &str, api_origin: &str) -> String {
    // Stripe.js serves its frames from subdomains of its own host too.
    let scripts = match script_origin {
        "https://js.stripe.com" => format!("{script_origin} https://*.js.stripe.com"),
        _ => script_origin.to_owned(),
    };
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' {script_origin}; \
         script-src 'self' {scripts}; frame-src {scripts} https://hooks.stripe.com; \
         connect-src {api_origin}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Where pages link a static asset served at `path`: with a digest of its `contents`, so
/// browsers keep it a year and a changed asset is a new address.
pub fn asset_href(path: &str, contents: &str) -> String {
    use sha2::Digest;
    let digest = hex::encode(Sha256::digest(contents.as_bytes()));
    format!("{path}?v={}", &digest[..12])
}

/// How long a browser keeps an asset asked for with `query`, when pages link it as `href`: a
/// year at the address pages link now, `immutable`; at any other (an old digest, none), checked
/// again each time.
pub fn asset_cache_control(query: Option<&str>, href: &str) -> &'static str {
    if query.is_some() && query == href.split_once('?').map(|(_, q)| q) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Links that open one order's page without an account: the order's id, an expiry, and an HMAC
/// of both, so a link names its order and nothing else, cannot be changed to name another, and
/// stops working when it expires. The secret holds one key or several, one per line: links are
/// signed with the first and accepted under any, so a key is rotated by putting the new one
/// first and dropping the old one once its links have expired.
#[derive(Clone)]
pub struct OrderLinks {
    keys: Vec<Vec<u8>>,
}

impl OrderLinks {
    /// The keys in `secret`: one per line, each at least 32 bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, &'static str> {
        let text = std::str::from_utf8(secret).map_err(|_| "the link secret is not text")?;
        let keys: Vec<Vec<u8>> = text
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec())
            .collect();
        if keys.is_empty() || keys.iter().any(|k| k.len() < 32) {
            return Err("each key of the link secret must be at least 32 bytes");
        }
        Ok(OrderLinks { keys })
    }

    /// The key pages' cookies are derived from: the newest.
    pub fn current_key(&self) -> &[u8] {
        &self.keys[0]
    }

    fn mac(key: &[u8], order: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(format!("oms order link\n{order}\n{expires}").as_bytes());
        mac
    }

    /// The token of a link to `order`'s page that works until `expires` (unix seconds):
    /// `<expires>.<hex HMAC>`.
    pub fn token(&self, order: &str, expires: i64) -> String {
        let mac = Self::mac(self.current_key(), order, expires);
        format!("{expires}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `token` opens `order`'s page at `now` (unix seconds): signed under one of the
    /// keys for that order, compared in constant time, and not expired.
    pub fn opens(&self, order: &str, token: &str, now: i64) -> bool {
        let Some((expires, signature)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(signature)) = (expires.parse::<i64>(), hex::decode(signature)) else {
            return false;
        };
        // Every key is tried, whatever the first answers: the time taken tells nothing.
        let signed = self.keys.iter().fold(false, |found, key| {
            Self::mac(key, order, expires)
                .verify_slice(&signature)
                .is_ok()
                | found
        });
        signed && now < expires
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

    fn keys() -> CookieKeys {
        CookieKeys::derive(
            b"a console secret that is long enough for the keys",
            "oms-console",
        )
        .unwrap()
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Held {
        who: String,
    }

    /// The `name=value` part of a `Set-Cookie` value, as a browser sends it back.
    fn sent_back(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn a_value_reads_back_only_under_its_own_keys_and_its_cookie_is_hardened() {
        let keys = keys();
        let held = Held {
            who: "staff-ada".into(),
        };
        let set = keys.write("oms_test", &held, "/console", 60);
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
        assert_eq!(keys.read::<Held>(&sent_back(&set), "oms_test"), Some(held));
        let shop = CookieKeys::derive(
            b"a console secret that is long enough for the keys",
            "oms-shop",
        )
        .unwrap();
        assert_eq!(
            shop.read::<Held>(&sent_back(&set), "oms_test"),
            None,
            "another site's keys"
        );
        let mut forged = sent_back(&set);
        forged.pop();
        forged.push('A');
        assert_eq!(keys.read::<Held>(&forged, "oms_test"), None);
        assert!(removal("oms_test", "/console").contains("Max-Age=0"));
    }

    #[test]
    fn an_order_link_opens_its_own_order_until_it_expires_under_any_key_of_a_rotation() {
        let old = "an old link key that is long enough for HMAC";
        let new = "a new link key that is long enough for HMAC too";
        let before = OrderLinks::from_secret(old.as_bytes()).unwrap();
        let token = before.token("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", 2_000);
        assert!(before.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", &token, 1_999));
        assert!(
            !before.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", &token, 2_000),
            "expired"
        );
        assert!(
            !before.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J2", &token, 1_000),
            "another order"
        );
        let later = token.replacen("2000", "9000", 1);
        assert!(
            !before.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", &later, 1_000),
            "a changed expiry"
        );
        for tampered in ["", "2000", "2000.zz", "x.00"] {
            assert!(!before.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", tampered, 1_000));
        }
        let rotating = OrderLinks::from_secret(format!("{new}\n{old}\n").as_bytes()).unwrap();
        assert!(
            rotating.opens("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", &token, 1_000),
            "an old link"
        );
        assert_ne!(
            rotating.token("01KAZ3Q6W8T2Y7X9V5N4M3K2J1", 2_000),
            token,
            "signed anew"
        );
        assert!(OrderLinks::from_secret(b"short").is_err());
    }

    #[test]
    fn an_asset_is_kept_a_year_only_at_the_address_pages_link() {
        let href = asset_href("/shop/assets/shop.css", "body {}");
        let query = href.split_once('?').map(|(_, q)| q);
        assert!(asset_cache_control(query, &href).contains("immutable"));
        assert_eq!(asset_cache_control(Some("v=old"), &href), "no-cache");
        assert_eq!(asset_cache_control(None, &href), "no-cache");
        assert_ne!(href, asset_href("/shop/assets/shop.css", "body { }"));
    }

    #[test]
    fn csrf_tokens_belong_to_their_nonce() {
        let keys = keys();
        let token = keys.csrf_token("nonce-1");
        assert!(keys.csrf_valid("nonce-1", &token));
        assert!(!keys.csrf_valid("nonce-2", &token));
        assert!(!keys.csrf_valid("nonce-1", ""));
        assert!(!keys.csrf_valid("nonce-1", "not hex"));
        assert!(CookieKeys::derive(b"short", "oms-console").is_err());
    }
}
