//! The Basic scheme on the wire: `Proxy-Authorization: Basic base64(user:password)` in, and
//! `Proxy-Authenticate: Basic realm="…"` out (RFC 7617).
//!
//! Squid 5.7's rules, reproduced: the scheme name is case-insensitive; the decoded text must
//! contain no CR or LF; the user name ends at the first `:`; a missing or empty password is
//! refused ("most likely a browser bug"); with `casesensitive off` (the default) the user name
//! is lower-cased before the lookup.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Standard alphabet, padding optional: Squid's decoder does not insist on `=` either, and
/// some clients leave it out.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decoded Basic credentials. The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why a `Proxy-Authorization` value was not usable Basic credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasicError {
    #[error("the Proxy-Authorization header is empty")]
    Empty,
    #[error("authentication scheme '{0}' is not supported (only Basic)")]
    OtherScheme(String),
    #[error("Basic credentials are not valid base64")]
    Base64,
    #[error("Basic credentials contain CR, LF or NUL")]
    ControlCharacters,
    #[error("Basic credentials have no ':' between user name and password")]
    NoColon,
    #[error("Basic credentials have an empty user name")]
    EmptyUser,
    #[error("Basic credentials for user '{0}' have an empty password")]
    EmptyPassword(String),
    #[error("Basic user name is not UTF-8")]
    UserNotUtf8,
}

impl BasicError {
    /// The user name, when the credentials got far enough to have one (for the access log).
    pub fn user(&self) -> Option<&str> {
        match self {
            BasicError::EmptyPassword(user) => Some(user),
            _ => None,
        }
    }
}

/// Parses a `Proxy-Authorization` header value. `case_sensitive` is Squid's
/// `auth_param basic casesensitive`: when off, the user name is lower-cased.
pub fn parse(value: &[u8], case_sensitive: bool) -> Result<Credentials, BasicError> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(BasicError::Empty);
    }
    let (scheme, rest) = match value.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(at) => (&value[..at], value[at..].trim_ascii()),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"Basic") {
        return Err(BasicError::OtherScheme(String::from_utf8_lossy(scheme).into_owned()));
    }
    let decoded = LENIENT.decode(rest).map_err(|_| BasicError::Base64)?;
    if decoded.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(BasicError::ControlCharacters);
    }
    let colon = decoded.iter().position(|b| *b == b':').ok_or(BasicError::NoColon)?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    if user.is_empty() {
        return Err(BasicError::EmptyUser);
    }
    let mut user = String::from_utf8(user.to_vec()).map_err(|_| BasicError::UserNotUtf8)?;
    if !case_sensitive {
        // ASCII only, as Squid's Tolower() in the C locale: "Ä" stays "Ä".
        user.make_ascii_lowercase();
    }
    if password.is_empty() {
        return Err(BasicError::EmptyPassword(user));
    }
    Ok(Credentials {
        user,
        password: password.to_vec(),
    })
}

/// The `Proxy-Authenticate` value for a 407: `Basic realm="REALM"`, with `"` and `\` escaped
/// as a quoted-string requires.
pub fn challenge(realm: &str) -> String {
    let mut out = String::with_capacity(realm.len() + 14);
    out.push_str("Basic realm=\"");
    for c in realm.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        // Control characters cannot appear in a header value; drop them.
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// `Basic base64(user:password)`, for tests and for clients.
pub fn encode(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_curl_sends() {
        let creds = parse(encode("alice", "s3cret:with colon").as_bytes(), true).unwrap();
        assert_eq!(creds.user, "alice");
        assert_eq!(creds.password, b"s3cret:with colon");
        let lower = parse(b"basic   QWxpY2U6cHc=  ", false).unwrap();
        assert_eq!(lower.user, "alice");
    }

    #[test]
    fn errors() {
        let b64 = |s: &[u8]| format!("Basic {}", STANDARD.encode(s));
        let cases: Vec<(Vec<u8>, BasicError)> = vec![
            (b"".to_vec(), BasicError::Empty),
            (b"Digest username=x".to_vec(), BasicError::OtherScheme("Digest".into())),
            (b"Basic !!!".to_vec(), BasicError::Base64),
            (b"Basic".to_vec(), BasicError::NoColon),
            (b64(b"nocolon").into_bytes(), BasicError::NoColon),
            (b64(b":pw").into_bytes(), BasicError::EmptyUser),
            (b64(b"bob:").into_bytes(), BasicError::EmptyPassword("bob".into())),
            (b64(b"bob:a\r\nb").into_bytes(), BasicError::ControlCharacters),
            (b64(b"\xff:pw").into_bytes(), BasicError::UserNotUtf8),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(&input, true),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn padding_is_optional_and_lower_casing_is_ascii_only() {
        // "alice:pw" is YWxpY2U6cHc= in padded base64.
        assert_eq!(parse(b"Basic YWxpY2U6cHc", true).unwrap().user, "alice");
        let creds = parse(encode("ÄLICE", "pw").as_bytes(), false).unwrap();
        assert_eq!(creds.user, "Älice");
    }

    #[test]
    fn challenge_escapes() {
        assert_eq!(challenge("lab proxy"), "Basic realm=\"lab proxy\"");
        assert_eq!(challenge("a\"b\\c\nd"), "Basic realm=\"a\\\"b\\\\cd\"");
    }

    #[test]
    fn debug_hides_password() {
        let creds = parse(encode("alice", "pw").as_bytes(), true).unwrap();
        assert!(format!("{creds:?}").contains("<hidden>"));
    }
}
