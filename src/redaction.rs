//! What is never written down: the values of arguments that plugins.yml
//! lists under a function's `redact:`, and of any argument whose name looks
//! like a secret (a token, a password, an API key…). The plugin gets them;
//! the call's record (the call log, the consoles, the audit log) shows
//! `"[redacted]"` instead.

use serde_json::{Map, Value};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Parts of a key that mark it as a secret, compared without case, `-`
/// or `_`: `api_key`, `X-Api-Key` and `apiKey` all hold `apikey`.
const SECRET_MARKS: [&str; 10] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "accesskey",
    "cookie",
];

/// Whether an argument called `key` looks like it holds a secret.
pub fn looks_secret(key: &str) -> bool {
    let folded: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    // `max_tokens` counts tokens of text; it holds no secret.
    let counts_tokens = folded.contains("tokens");
    SECRET_MARKS
        .iter()
        .any(|mark| folded.contains(mark) && !(*mark == "token" && counts_tokens))
}

/// Replace the values of `listed` keys (at the top) and of secret-looking
/// keys (at any depth) in `arguments`.
pub fn redact(arguments: &mut Map<String, Value>, listed: &[String]) {
    for (key, value) in arguments.iter_mut() {
        if listed.iter().any(|name| name == key) || looks_secret(key) {
            *value = Value::String(REDACTED.into());
        } else {
            redact_nested(value);
        }
    }
}

fn redact_nested(value: &mut Value) {
    match value {
        Value::Object(object) => redact(object, &[]),
        Value::Array(items) => items.iter_mut().for_each(redact_nested),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_names_are_recognised_in_any_spelling() {
        for key in [
            "password",
            "api_key",
            "X-Api-Key",
            "apiKey",
            "githubToken",
            "client_secret",
            "Authorization",
            "aws_access_key_id",
        ] {
            assert!(looks_secret(key), "{key}");
        }
        for key in ["name", "numDice", "path", "session_length", "max_tokens"] {
            assert!(!looks_secret(key), "{key}");
        }
    }

    #[test]
    fn listed_and_secret_values_are_replaced_at_any_depth() {
        let Value::Object(mut arguments) = json!({
            "city": "Lyon",
            "account": "ada-42",
            "apiKey": "sk-123",
            "options": {"retries": 3, "password": "hunter2"},
            "hops": [{"token": "t"}, "plain"],
        }) else {
            unreachable!()
        };
        redact(&mut arguments, &["account".to_string()]);
        assert_eq!(
            Value::Object(arguments),
            json!({
                "city": "Lyon",
                "account": "[redacted]",
                "apiKey": "[redacted]",
                "options": {"retries": 3, "password": "[redacted]"},
                "hops": [{"token": "[redacted]"}, "plain"],
            })
        );
    }
}
