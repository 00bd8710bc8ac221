//! askama page structs (the HTML is in `templates/`) and the small presentation helpers
//! they need: scopes in words, a device name from a user agent. Texts live in the
//! templates so that a translation is a template change. Calls nothing.

use askama::Template;

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// CSRF token of the form.
    pub csrf: String,
    /// Pre-filled login (`login_hint` or the last attempt).
    pub login: String,
    /// Error to show (never says whether the login exists).
    pub error: Option<String>,
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
    /// Errors in words.
    pub errors: Vec<String>,
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
    /// What the client asks for, in words.
    pub scopes: Vec<String>,
}

/// One session on the account page.
#[derive(Debug)]
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Device in words.
    pub device: String,
    /// Client in words.
    pub client: String,
    /// IP.
    pub ip: String,
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
    /// Scopes in words.
    pub scopes: String,
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
    pub notice: Option<String>,
    /// Errors of the last action.
    pub errors: Vec<String>,
}

/// One row of the history page.
#[derive(Debug)]
pub struct HistoryRow {
    /// When.
    pub at: String,
    /// Outcome in words.
    pub outcome: String,
    /// Method in words.
    pub method: String,
    /// IP.
    pub ip: String,
    /// Device.
    pub device: String,
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
    /// Title.
    pub title: String,
    /// Message.
    pub message: String,
    /// True for an error (announced as an alert).
    pub is_error: bool,
    /// Optional link (href, text).
    pub link: Option<(String, String)>,
}

/// A scope in words.
pub fn scope_words(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are".to_owned(),
        "profile" => "See your login name".to_owned(),
        "email" => "See your e-mail address".to_owned(),
        "roles" => "See your roles at the cinema".to_owned(),
        "offline_access" => "Stay signed in while you are away".to_owned(),
        other => format!("Use the permission \u{201c}{other}\u{201d}"),
    }
}

/// A short device description from a user agent ("Firefox on Linux").
pub fn device(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|u| !u.is_empty()) else {
        return "Unknown device".to_owned();
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
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => format!("Browser on {o}"),
        (None, None) => ua.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// User agents become short device names; scopes become words.
    #[test]
    fn presentation_helpers() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(device(Some(firefox)), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36";
        assert_eq!(device(Some(chrome)), "Chrome on Android");
        assert_eq!(device(None), "Unknown device");
        assert_eq!(scope_words("email"), "See your e-mail address");
        assert!(scope_words("films:watch").contains("films:watch"));
    }
}
