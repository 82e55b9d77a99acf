//! Signing in (OpenID Connect code with PKCE, at the API's identity provider) and out.

use super::*;

/// Where a sign-in came from: the page to open once signed in.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SignInQuery {
    next: Option<String>,
}

pub(super) async fn sign_in<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Query(query): Query<SignInQuery>,
) -> Result<Response, PageError> {
    let keys = keys(&app).await?;
    let (url, mut pending) = app
        .signin
        .start(Utc::now())
        .await
        .map_err(|e| PageError::Unavailable(e.to_string()))?;
    pending.next = query.next.filter(|next| crate::session::returnable(next));
    let cookie = keys.write(SIGN_IN_COOKIE, &pending, "/console/auth", SIGN_IN_SECONDS);
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, url), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub(super) async fn callback<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, PageError> {
    if let Some(error) = callback.error {
        return Err(PageError::Forbidden(refusal(&error)));
    }
    let (Some(code), Some(state)) = (callback.code, callback.state) else {
        return Err(PageError::Invalid(vec![
            "the sign-in answer has no code".into()
        ]));
    };
    let keys = keys(&app).await?;
    let pending: Option<PendingSignIn> = keys.read(&cookie_header(&headers), SIGN_IN_COOKIE);
    let next = pending
        .as_ref()
        .and_then(|p| p.next.clone())
        .filter(|next| crate::session::returnable(next));
    let session = app
        .signin
        .finish(pending, &code, &state, Utc::now())
        .await
        .map_err(|e| PageError::Forbidden(e.to_string()))?;
    if session.caller().is_none() {
        return Err(PageError::Forbidden(
            "The identity provider's subject is not usable here.".into(),
        ));
    }
    tracing::info!(scopes = ?session.scopes, "console: signed in");
    let lifetime = (session.expires_at - Utc::now())
        .num_seconds()
        .clamp(1, MAX_SESSION_SECONDS);
    // Back to the page that asked for the sign-in (a session that ran out mid-task), else home.
    let mut response = Redirect::to(next.as_deref().unwrap_or(home(&session))).into_response();
    let headers = response.headers_mut();
    for cookie in [
        keys.write(SESSION_COOKIE, &session, BASE, lifetime),
        removal(SIGN_IN_COOKIE, "/console/auth"),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).map_err(|e| PageError::Internal(e.to_string()))?,
        );
    }
    Ok(response)
}

pub(super) async fn sign_out<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    _form: StaffForm,
) -> Result<Response, PageError> {
    let html = app
        .pages
        .render(
            "message.html",
            context! { title => "Signed out", lines => ["You are signed out of the console."], sign_in => true },
        )
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::SET_COOKIE, removal(SESSION_COOKIE, BASE)),
        ],
        html,
    )
        .into_response())
}

/// What the page says when the identity provider did not sign someone in: its error code if it
/// is one OAuth 2.0 defines (RFC 6749, 4.1.2.1), never text a link brought along — the page is
/// the console's own, and a crafted `?error=` would speak with its voice.
fn refusal(error: &str) -> String {
    const CODES: [&str; 7] = [
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    ];
    match CODES.iter().find(|code| **code == error) {
        Some(code) => format!("The identity provider did not sign you in ({code})."),
        None => "The identity provider did not sign you in.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn only_an_oauth_error_code_is_shown_never_text_a_link_brought() {
        assert_eq!(
            refusal("access_denied"),
            "The identity provider did not sign you in (access_denied)."
        );
        let crafted = refusal("Your account is locked: call +1 555 0100");
        assert!(!crafted.contains("555"), "{crafted}");
    }
}
