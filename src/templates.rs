//! askama page structs (the HTML is in `templates/`) and the codes they show: every
//! text a viewer reads is in the templates (words for codes in `templates/messages.html`)
//! so that a translation is a template change. Calls nothing.

use askama::Template;
use serde::{Deserialize, Serialize};

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// CSRF token of the form.
    pub csrf: String,
    /// Pre-filled login (`login_hint` or the last attempt).
    pub login: String,
    /// The last attempt failed (the page never says whether the login exists).
    pub failed: bool,
    /// Parked authorization request.
    pub request: Option<String>,
    /// Where to go after signing in (an usher path).
    pub return_to: Option<String>,
    /// The client the user signs in for.
    pub client_name: Option<String>,
    /// Link to the sign-up page.
    pub signup_href: String,
}

/// The sign-up page.
#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    /// CSRF token.
    pub csrf: String,
    /// What is wrong with the form.
    pub errors: Vec<FormError>,
    /// Value entered.
    pub login: String,
    /// Value entered.
    pub email: String,
    /// Parked authorization request.
    pub request: Option<String>,
    /// Link back to the sign-in page.
    pub login_href: String,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    /// CSRF token.
    pub csrf: String,
    /// Parked authorization request.
    pub request: String,
    /// Client display name.
    pub client_name: String,
    /// The scopes the client asks for (shown in words).
    pub scopes: Vec<String>,
}

/// One session on the account page.
#[derive(Debug)]
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Device from the user agent.
    pub device: Device,
    /// Client name; `None` for usher's own sign-in.
    pub client: Option<String>,
    /// IP, if known.
    pub ip: Option<String>,
    /// Start.
    pub started_at: String,
    /// Last use.
    pub last_used_at: String,
    /// Part of this browser's session family.
    pub this_device: bool,
}

/// One consented app on the account page.
#[derive(Debug)]
pub struct ConsentRow {
    /// Client id.
    pub client_id: String,
    /// Client name.
    pub name: String,
    /// The granted scopes (shown in words).
    pub scopes: Vec<String>,
    /// When.
    pub granted_at: String,
}

/// The account page.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    /// CSRF token.
    pub csrf: String,
    /// Login.
    pub login: String,
    /// E-mail or empty.
    pub email: String,
    /// Live sessions.
    pub sessions: Vec<SessionRow>,
    /// Consented third-party apps.
    pub consents: Vec<ConsentRow>,
    /// Result of the last action.
    pub notice: Option<Notice>,
    /// Errors of the last action.
    pub errors: Vec<FormError>,
}

/// One row of the history page.
#[derive(Debug)]
pub struct HistoryRow {
    /// When.
    pub at: String,
    /// Outcome code: `success`, `bad_credentials`, `blocked`, `locked_out`.
    pub outcome: String,
    /// Method code: `login_page`, `password_grant`.
    pub method: String,
    /// IP, if known.
    pub ip: Option<String>,
    /// Device from the user agent.
    pub device: Device,
}

/// The login history page.
#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    /// Rows, newest first.
    pub items: Vec<HistoryRow>,
    /// Link to older rows.
    pub next_href: Option<String>,
}

/// The sign-out confirmation page (RP-initiated logout).
#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    /// CSRF token.
    pub csrf: String,
    /// The client asking, if known.
    pub client_name: Option<String>,
    /// Parameters carried through the confirmation.
    pub hidden: Vec<(String, String)>,
}

/// A page with one message (errors, "signed out").
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// What the page says.
    pub msg: Msg,
    /// True for an error (announced as an alert).
    pub is_error: bool,
}

/// What a one-message page says; the words are in `templates/messages.html`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// A dependency is down (503).
    Unavailable,
    /// usher failed (500).
    Failed,
    /// The request could not be done (4xx); no detail is shown.
    NotDone,
    /// A form without this browser's CSRF token.
    FormRefused,
    /// A form over the body limit.
    FormTooLarge,
    /// A parked sign-in request is gone.
    RequestExpired,
    /// Authorization request: `client_id` or `redirect_uri` repeated.
    AuthorizeRepeated,
    /// Authorization request without `client_id`.
    AuthorizeNoClientId,
    /// Authorization request of an unknown client.
    AuthorizeUnknownClient,
    /// Authorization request without `redirect_uri`.
    AuthorizeNoRedirectUri,
    /// Authorization request whose `redirect_uri` has a fragment.
    AuthorizeRedirectUriFragment,
    /// Authorization request whose `redirect_uri` is not registered.
    AuthorizeRedirectUriNotRegistered,
    /// Logout: the hint is not an ID token of usher's.
    LogoutBadHint,
    /// Logout: `client_id` differs from the hint's audience.
    LogoutClientMismatch,
    /// Logout: unknown client.
    LogoutUnknownClient,
    /// Logout: `post_logout_redirect_uri` not registered (or no client to check it).
    LogoutRedirectNotRegistered,
    /// Signed out (RP-initiated logout without a return address).
    SignedOut,
    /// Too many requests from this client (429).
    TooManyRequests,
}

impl Msg {
    /// Which title the page has.
    pub fn title(self) -> Title {
        match self {
            Self::Unavailable => Title::TryAgain,
            Self::Failed => Title::WentWrong,
            Self::NotDone => Title::NotDone,
            Self::FormRefused => Title::PleaseRetry,
            Self::FormTooLarge => Title::TooMuch,
            Self::RequestExpired => Title::LinkExpired,
            Self::AuthorizeRepeated
            | Self::AuthorizeNoClientId
            | Self::AuthorizeUnknownClient
            | Self::AuthorizeNoRedirectUri
            | Self::AuthorizeRedirectUriFragment
            | Self::AuthorizeRedirectUriNotRegistered => Title::BadSignIn,
            Self::LogoutBadHint
            | Self::LogoutClientMismatch
            | Self::LogoutUnknownClient
            | Self::LogoutRedirectNotRegistered => Title::BadSignOut,
            Self::SignedOut => Title::SignedOut,
            Self::TooManyRequests => Title::SlowDown,
        }
    }
}

/// The title of a one-message page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Title {
    /// 503.
    TryAgain,
    /// 500.
    WentWrong,
    /// Other failures.
    NotDone,
    /// CSRF refusal.
    PleaseRetry,
    /// Body too large.
    TooMuch,
    /// Parked request gone.
    LinkExpired,
    /// Invalid authorization request.
    BadSignIn,
    /// Invalid logout request.
    BadSignOut,
    /// Signed out.
    SignedOut,
    /// Rate limited.
    SlowDown,
}

/// The result of an account action, shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// Profile saved.
    ProfileSaved,
    /// Password changed, other sessions ended.
    PasswordChanged,
    /// One session ended.
    SessionEnded,
    /// "Log out of all other sessions": how many ended.
    OthersSignedOut(usize),
    /// A consent withdrawn.
    AccessWithdrawn,
}

/// What is wrong with a form: the field (empty for the whole form) and a stable code
/// (`too_short`, `login_taken`, `wrong_password`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormError {
    /// The form field, or empty.
    pub field: String,
    /// The code.
    pub code: String,
}

/// A device as read from a user agent; the words are in the templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// Browser and operating system known.
    BrowserOn(&'static str, &'static str),
    /// Only the browser known.
    Browser(&'static str),
    /// Only the operating system known.
    On(&'static str),
    /// Neither: the start of the user agent.
    Other(String),
    /// No user agent.
    Unknown,
}

/// The device of a user agent ("Firefox" on "Linux"). Product names are not translated.
pub fn device(user_agent: Option<&str>) -> Device {
    let Some(ua) = user_agent.filter(|u| !u.is_empty()) else {
        return Device::Unknown;
    };
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let os = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => Device::BrowserOn(b, o),
        (Some(b), None) => Device::Browser(b),
        (None, Some(o)) => Device::On(o),
        (None, None) => Device::Other(ua.chars().take(40).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// User agents become devices; the templates put codes into words (a translation
    /// is a template change).
    #[test]
    fn presentation_helpers() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(device(Some(firefox)), Device::BrowserOn("Firefox", "Linux"));
        let chrome = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36";
        assert_eq!(device(Some(chrome)), Device::BrowserOn("Chrome", "Android"));
        assert_eq!(device(None), Device::Unknown);
        let page = ConsentPage {
            csrf: "c".into(),
            request: "r".into(),
            client_name: "Film Club".into(),
            scopes: vec![
                "email".into(),
                "films:watch".into(),
                "offline_access".into(),
            ],
        }
        .render()
        .unwrap();
        assert!(page.contains("<li>See your e-mail address</li>"), "{page}");
        assert!(
            page.contains("<li>Use the permission &#8220;films:watch&#8221;</li>"),
            "{page}"
        );
        assert!(
            page.contains("<li>Stay signed in while you are away</li>"),
            "{page}"
        );
        let page = MessagePage {
            msg: Msg::AuthorizeRedirectUriFragment,
            is_error: true,
        }
        .render()
        .unwrap();
        assert!(
            page.contains("<title>This sign-in request is not valid · usher</title>"),
            "{page}"
        );
    }
}
