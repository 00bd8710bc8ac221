//! One-line messages for configuration errors that figment reports: the TOML parser's
//! multi-line report (with its source snippet) is folded into one line naming the key
//! and the value, and the value of a secret key is never repeated.

use super::{ConfigError, SECRET_KEYS, env_name};

/// One line for a figment error: where (the environment variable, or the key and the
/// file), then what, with the TOML parser's multi-line report folded into one line.
pub(super) fn describe_figment_error(e: &figment::Error) -> ConfigError {
    let key = e.path.join(".");
    let file = e
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .and_then(|s| s.file_path())
        .map(|p| p.display().to_string());
    let source = e
        .metadata
        .as_ref()
        .map(|m| m.name.to_string())
        .unwrap_or_default();
    let file_name = file.unwrap_or(source);
    let kind = match &e.kind {
        figment::error::Kind::Message(m) => m.clone(),
        figment::error::Kind::UnknownField(name, _) => {
            return ConfigError(format!("{file_name}: unknown key `{name}`"));
        }
        other => other.to_string(),
    };
    let line = if key.is_empty() {
        format!("{file_name}: {}", toml_report_line(&kind))
    } else if file_name.to_ascii_lowercase().contains("toml") || file_name.contains('/') {
        format!("{key} (in {file_name}): {}", fold(&kind))
    } else {
        format!("{}: {}", env_name(&key), fold(&kind))
    };
    ConfigError(line)
}

/// The lines of `text`, trimmed and joined by `; `.
fn fold(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Folds the TOML parser's report (`TOML parse error at line L, column C`, a source
/// snippet framed by `|`, then the reasons) into `key = value: reason (line L, column C)`.
/// The value of a secret key is not repeated.
fn toml_report_line(report: &str) -> String {
    let mut position = None;
    let mut snippet = None;
    let mut reasons = Vec::new();
    for line in report.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(at) = line.strip_prefix("TOML parse error at ") {
            position = Some(at.to_owned());
        } else if let Some((num, code)) = line.split_once('|') {
            let num = num.trim();
            if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()) {
                snippet = Some(code.trim().to_owned());
            }
        } else {
            reasons.push(line);
        }
    }
    let reason = if reasons.is_empty() {
        "invalid TOML".to_owned()
    } else {
        reasons.join("; ")
    };
    let mut out = match snippet.as_deref().and_then(|s| s.split_once('=')) {
        Some((k, v)) => {
            let k = k.trim();
            let v = if SECRET_KEYS.contains(&k) {
                "[redacted]".to_owned()
            } else {
                v.trim().chars().take(80).collect()
            };
            format!("{k} = {v}: {reason}")
        }
        None => match snippet {
            Some(s) if !s.is_empty() => {
                format!("{}: {reason}", s.chars().take(80).collect::<String>())
            }
            _ => reason,
        },
    };
    if let Some(p) = position {
        out.push_str(&format!(" ({p})"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    /// A malformed TOML file is one line naming the key, the value and the position;
    /// the value of a secret key is not repeated.
    #[test]
    fn malformed_toml_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usher.toml");
        std::fs::write(&path, "bind = \"127.0.0.1:9000\"\naudience = \"films\n").unwrap();
        let err = Config::load_from(Some(&path), &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "invalid configuration: {}: audience = \"films: invalid basic string \
                 (line 2, column 18)",
                path.display()
            )
        );
        std::fs::write(&path, "database_url = \"postgres://u:hunter2@db/x\n").unwrap();
        let err = Config::load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(!err.contains('\n') && !err.contains("hunter2"), "{err}");
        assert!(err.contains("database_url = [redacted]"), "{err}");
        std::fs::write(&path, "access_token_ttl = 5\n").unwrap();
        let err = Config::load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.contains("access_token_ttl (in ") && err.contains('5'),
            "{err}"
        );
    }
}
