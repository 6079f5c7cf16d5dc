//! The two kinds of templates in resources.yml and prompts.yml.
//!
//! - **URI templates** (RFC 6570, level 1): `greet-user://{firstName}/{lastName}`.
//!   A client reads `greet-user://Ada/Lovelace`; [`UriTemplate::matches`] finds
//!   the values of the variables in it. Level 1 is what WASImancer's files use;
//!   operators (`{+path}`, `{?query}`) are refused with a message saying so.
//! - **Placeholders** in texts: `Hello ${firstName}!`. [`fill`] replaces each in
//!   one pass, so a value that itself contains `${…}` is inserted as plain text
//!   and never expanded again.

use std::borrow::Cow;
use std::fmt;

/// The values of a template's variables in a URI, in template order.
pub type VariableValues = Vec<(String, String)>;

/// One piece of a URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A parsed level-1 URI template. A template without variables is a plain URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    text: String,
    parts: Vec<Part>,
}

impl UriTemplate {
    /// Parse `text`, or say what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let open = rest.find('{');
            let close = rest.find('}');
            match (open, close) {
                (_, Some(close)) if open.is_none_or(|open| close < open) => {
                    return Err(format!("`}}` without a `{{` in `{text}`"));
                }
                (None, _) => {
                    parts.push(Part::Literal(rest.to_string()));
                    break;
                }
                (Some(open), close) => {
                    if open > 0 {
                        parts.push(Part::Literal(rest[..open].to_string()));
                    }
                    let Some(close) = close else {
                        return Err(format!("`{{` without a `}}` in `{text}`"));
                    };
                    let name = &rest[open + 1..close];
                    check_variable(name, text)?;
                    if matches!(parts.last(), Some(Part::Variable(_))) {
                        return Err(format!(
                            "`{text}` has two variables in a row; separate them with text such as `/`"
                        ));
                    }
                    if parts
                        .iter()
                        .any(|p| matches!(p, Part::Variable(v) if v == name))
                    {
                        return Err(format!("variable `{name}` appears twice in `{text}`"));
                    }
                    parts.push(Part::Variable(name.to_string()));
                    rest = &rest[close + 1..];
                }
            }
        }
        Ok(Self {
            text: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The variables, in the order they appear.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Whether the template has no variables (it is a plain URI).
    pub fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// The values of the variables when `uri` is an expansion of this
    /// template, in template order, percent-decoded. A value is never empty
    /// and never holds a `/` (level-1 expansion encodes one as `%2F`).
    pub fn matches(&self, uri: &str) -> Option<VariableValues> {
        let mut values = Vec::new();
        let mut rest = uri;
        let mut parts = self.parts.iter().peekable();
        while let Some(part) = parts.next() {
            match part {
                Part::Literal(literal) => rest = rest.strip_prefix(literal.as_str())?,
                Part::Variable(name) => {
                    let end = match parts.peek() {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let raw = &rest[..end];
                    if raw.is_empty() || raw.contains('/') {
                        return None;
                    }
                    values.push((name.clone(), percent_decode(raw).into_owned()));
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(values)
    }

    /// The URI for `values` (looked up by variable name): every character
    /// outside RFC 3986's unreserved set is percent-encoded, as level 1 says.
    pub fn expand<'a>(&self, value: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
        let mut uri = String::with_capacity(self.text.len());
        for part in &self.parts {
            match part {
                Part::Literal(literal) => uri.push_str(literal),
                Part::Variable(name) => match value(name) {
                    Some(value) if !value.is_empty() => percent_encode(value, &mut uri),
                    _ => return Err(format!("a value for `{name}` is needed")),
                },
            }
        }
        Ok(uri)
    }
}

impl fmt::Display for UriTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn check_variable(name: &str, text: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("`{{}}` in `{text}` names no variable"));
    }
    if let Some(operator) = name.chars().next().filter(|c| "+#./;?&=,!@|".contains(*c)) {
        return Err(format!(
            "`{{{name}}}` in `{text}` uses the operator `{operator}`; only simple `{{name}}` variables are supported (RFC 6570 level 1)"
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "variable `{name}` in `{text}`: use letters, digits and `_` in variable names"
        ));
    }
    Ok(())
}

fn percent_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            decoded.push((h * 16 + l) as u8);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    // A value that does not decode to text is kept as it was sent.
    String::from_utf8(decoded).map_or(Cow::Borrowed(raw), Cow::Owned)
}

fn percent_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Replace every `${name}` in `text` for which `value` has an answer; other
/// placeholders stay as written (WASImancer leaves unknown ones alone too).
/// One pass: inserted values are never scanned for placeholders.
pub fn fill<'a>(text: &str, value: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut filled = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        filled.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((name, end)) => {
                match value(name) {
                    Some(found) => filled.push_str(found),
                    None => filled.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                filled.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    filled.push_str(rest);
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(template: &str, uri: &str) -> Option<VariableValues> {
        UriTemplate::parse(template).unwrap().matches(uri)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn wasimancer_templates_match_their_uris() {
        assert_eq!(
            values("echo://{message}", "echo://hello_world"),
            Some(pairs(&[("message", "hello_world")]))
        );
        assert_eq!(
            values(
                "greet-user://{firstName}/{lastName}",
                "greet-user://Ada/Lovelace"
            ),
            Some(pairs(&[("firstName", "Ada"), ("lastName", "Lovelace")]))
        );
        assert_eq!(
            values("file://{name}.txt", "file://a.b.txt"),
            Some(pairs(&[("name", "a.b")]))
        );
    }

    #[test]
    fn uris_that_do_not_fit_are_not_matched() {
        assert_eq!(values("echo://{message}", "echo://"), None);
        assert_eq!(values("echo://{message}", "echo://a/b"), None);
        assert_eq!(values("echo://{message}", "other://x"), None);
        assert_eq!(values("greet-user://{a}/{b}", "greet-user://Ada"), None);
        assert_eq!(values("config://server", "config://server/x"), None);
        assert_eq!(values("config://server", "config://server"), Some(vec![]));
    }

    #[test]
    fn values_are_percent_decoded_and_expansion_encodes_them() {
        assert_eq!(
            values("echo://{message}", "echo://hello%20world%2F%C3%A9"),
            Some(pairs(&[("message", "hello world/é")]))
        );
        let template = UriTemplate::parse("greet-user://{firstName}/{lastName}").unwrap();
        let uri = template
            .expand(|name| Some(if name == "firstName" { "Jo Ann" } else { "a/b" }))
            .unwrap();
        assert_eq!(uri, "greet-user://Jo%20Ann/a%2Fb");
        assert_eq!(
            template.matches(&uri),
            Some(pairs(&[("firstName", "Jo Ann"), ("lastName", "a/b")]))
        );
        assert!(template.expand(|_| None).unwrap_err().contains("firstName"));
    }

    #[test]
    fn templates_beyond_level_one_are_refused_with_a_reason() {
        for (bad, says) in [
            ("echo://{+path}", "operator `+`"),
            ("echo://{?q}", "operator `?`"),
            ("echo://{a}{b}", "two variables in a row"),
            ("echo://{a}/{a}", "appears twice"),
            ("echo://{a", "without a `}`"),
            ("echo://a}", "without a `{`"),
            ("echo://{}", "names no variable"),
            ("echo://{a b}", "letters, digits"),
        ] {
            let error = UriTemplate::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        assert!(
            UriTemplate::parse("llm://instructions")
                .unwrap()
                .is_literal()
        );
    }

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_stay() {
        let value = |name: &str| match name {
            "name" => Some("${other}"),
            "other" => Some("nope"),
            _ => None,
        };
        assert_eq!(
            fill("Hi ${name}, ${missing} and ${name", value),
            "Hi ${other}, ${missing} and ${name"
        );
        assert_eq!(fill("${other}${other}!", value), "nopenope!");
        assert_eq!(fill("no placeholders", value), "no placeholders");
    }
}
