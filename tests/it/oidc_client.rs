//! An off-the-shelf relying party, the `openidconnect` crate, unchanged, drives the whole
//! flow: discovery, authorization code with PKCE and nonce, the login form, code
//! exchange, ID-token verification against the JWKS, userinfo, refresh, and
//! RP-initiated logout.

use crate::backend_test;
use crate::harness::*;
use openidconnect::core::{
    CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreResponseType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, CsrfToken, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;

backend_test! {
    /// The `openidconnect` relying party completes login, verifies the ID token (its
    /// `at_hash` as the library computes it), reads userinfo, refreshes (having asked
    /// for `offline_access`, OIDC Core §11), and logs out; after logout usher refuses the
    /// access token.
    async fn openidconnect_relying_party_full_flow(app) {
        let u = app.user().await;
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let issuer = IssuerUrl::new(app.base.clone()).unwrap();
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &http).await.unwrap();
        let end_session = metadata.additional_metadata().end_session_endpoint.clone().unwrap();
        let client = CoreClient::from_provider_metadata(metadata, ClientId::new("cinema-web".into()), None)
            .set_redirect_uri(RedirectUrl::new("http://127.0.0.1:8123/callback".into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, state, nonce) = client
            .authorize_url(AuthenticationFlow::<CoreResponseType>::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("roles".into()))
            .add_scope(Scope::new("offline_access".into()))
            .set_pkce_challenge(challenge)
            .url();

        // The browser part: authorize → login page → back to the client with a code.
        let r = read(app.client.get(auth_url.as_str()).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        let login_location = r.header("location").unwrap().to_owned();
        assert!(login_location.starts_with("/login?request="), "{login_location}");
        let done = app.sign_in_page(&login_location, &u.login, PASSWORD).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
        let callback = done.header("location").unwrap();
        assert!(callback.starts_with("http://127.0.0.1:8123/callback?"), "{callback}");
        assert_eq!(query_param(callback, "state").as_deref(), Some(state.secret().as_str()));
        assert_eq!(query_param(callback, "iss").as_deref(), Some(app.base.as_str()), "RFC 9207 iss");
        let code = query_param(callback, "code").unwrap();

        // The back channel: code exchange, ID token, userinfo.
        let tokens = client
            .exchange_code(AuthorizationCode::new(code)).unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http).await.unwrap();
        let id_token = tokens.id_token().expect("an ID token");
        let claims: &CoreIdTokenClaims = id_token.claims(&client.id_token_verifier(), &nonce).unwrap();
        assert_eq!(claims.subject().as_str(), u.id);
        assert_eq!(claims.preferred_username().map(|n| n.as_str()), Some(u.login.as_str()));
        assert!(claims.auth_time().is_some());
        let verifier = client.id_token_verifier();
        assert_eq!(id_token.signing_alg().unwrap(), &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
        let expected = AccessTokenHash::from_token(tokens.access_token(), id_token.signing_alg().unwrap(), id_token.signing_key(&verifier).unwrap()).unwrap();
        assert_eq!(claims.access_token_hash(), Some(&expected), "at_hash (OIDC Core §3.1.3.6)");
        let userinfo: CoreUserInfoClaims = client
            .user_info(tokens.access_token().clone(), None).unwrap()
            .request_async(&http).await.unwrap();
        assert_eq!(userinfo.subject().as_str(), u.id);
        assert_eq!(userinfo.preferred_username().map(|n| n.as_str()), Some(u.login.as_str()));

        // Refresh through the library.
        let refreshed = client
            .exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap()
            .request_async(&http).await.unwrap();
        assert_ne!(refreshed.access_token().secret(), tokens.access_token().secret());
        let access = refreshed.access_token().secret().clone();
        assert_eq!(app.get("/api/v1/users/me", Some(&access)).await.status, StatusCode::OK);

        // Single sign-on: a second authorization needs no second login.
        let (challenge2, _verifier2) = PkceCodeChallenge::new_random_sha256();
        let (auth_url2, _, _) = client
            .authorize_url(AuthenticationFlow::<CoreResponseType>::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge2)
            .url();
        let r = read(app.client.get(auth_url2.as_str()).send().await.unwrap()).await;
        assert!(r.header("location").unwrap().starts_with("http://127.0.0.1:8123/callback?code="), "SSO");

        // RP-initiated logout with the hint: no confirmation, back to the client with state.
        let logout_url = LogoutRequest::from(end_session)
            .set_id_token_hint(id_token)
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(SIGNED_OUT.into()).unwrap())
            .set_state(CsrfToken::new("bye".into()))
            .http_get_url();
        let r = read(app.client.get(logout_url.as_str()).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        assert_eq!(r.header("location"), Some(format!("{SIGNED_OUT}?state=bye").as_str()));
        assert_problem(&app.get("/api/v1/users/me", Some(&access)).await, 401, "session_ended");
        // The browser session ended too: the next authorization asks for a login again.
        let r = read(app.client.get(auth_url2.as_str()).send().await.unwrap()).await;
        assert!(r.header("location").unwrap().starts_with("/login?request="));
    }
}
