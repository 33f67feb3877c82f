//! MD5-crypt (`$1$`, glibc) and Apache's `$apr1$`: one algorithm (Poul-Henning Kamp's
//! md5crypt), two magic strings. Apache's `htpasswd` writes `$apr1$` by default, so operators'
//! files are full of it; no maintained crate implements it, and it is 40 lines on top of MD5.
//!
//! It is a weak hash (1000 MD5 rounds); hopproxy verifies it because Squid's `basic_ncsa_auth`
//! does, and `check` can say so.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// The 64-character alphabet of crypt(3), least significant 6 bits first.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A parsed `$1$salt$hash` or `$apr1$salt$hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Md5Crypt {
    magic: &'static str,
    salt: String,
    hash: String,
}

impl Md5Crypt {
    /// Parses the hash field of an htpasswd line. The salt is at most 8 characters, as in the
    /// reference implementation; the encoded hash is always 22.
    pub fn parse(text: &str) -> Result<Md5Crypt, String> {
        let (magic, rest) = if let Some(rest) = text.strip_prefix("$apr1$") {
            ("$apr1$", rest)
        } else if let Some(rest) = text.strip_prefix("$1$") {
            ("$1$", rest)
        } else {
            return Err("not an MD5-crypt hash".into());
        };
        let Some((salt, hash)) = rest.split_once('$') else {
            return Err(format!("{magic} hash without '$' after the salt"));
        };
        if salt.is_empty() || salt.len() > 8 || !salt.bytes().all(|b| ITOA64.contains(&b)) {
            return Err(format!("{magic} salt must be 1-8 characters of [./0-9A-Za-z]"));
        }
        if hash.len() != 22 || !hash.bytes().all(|b| ITOA64.contains(&b)) {
            return Err(format!("{magic} hash must be 22 characters of [./0-9A-Za-z]"));
        }
        Ok(Md5Crypt {
            magic,
            salt: salt.to_string(),
            hash: hash.to_string(),
        })
    }

    pub fn verify(&self, password: &[u8]) -> bool {
        let computed = encode(&digest(password, self.magic.as_bytes(), self.salt.as_bytes()));
        computed.as_bytes().ct_eq(self.hash.as_bytes()).into()
    }
}

/// Formats `magic salt $ hash` for `password` (used by tests to cross-check with openssl).
pub fn hash(password: &[u8], magic: &str, salt: &str) -> String {
    format!(
        "{magic}{salt}${}",
        encode(&digest(password, magic.as_bytes(), salt.as_bytes()))
    )
}

fn digest(password: &[u8], magic: &[u8], salt: &[u8]) -> [u8; 16] {
    let mut alternate = Md5::new();
    alternate.update(password);
    alternate.update(salt);
    alternate.update(password);
    let alternate: [u8; 16] = alternate.finalize().into();

    let mut context = Md5::new();
    context.update(password);
    context.update(magic);
    context.update(salt);
    let mut left = password.len();
    while left > 0 {
        context.update(&alternate[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    // The reference code's quirk: a NUL byte for each set bit, the password's first byte
    // (or NUL for an empty one — it reads the C string's terminator) for each clear bit.
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update([password.first().copied().unwrap_or(0)]);
        }
        bits >>= 1;
    }
    let mut result: [u8; 16] = context.finalize().into();

    for round in 0..1000 {
        let mut context = Md5::new();
        if round & 1 == 1 {
            context.update(password);
        } else {
            context.update(result);
        }
        if round % 3 != 0 {
            context.update(salt);
        }
        if round % 7 != 0 {
            context.update(password);
        }
        if round & 1 == 1 {
            context.update(result);
        } else {
            context.update(password);
        }
        result = context.finalize().into();
    }
    result
}

fn encode(f: &[u8; 16]) -> String {
    let mut out = String::with_capacity(22);
    let mut push = |value: u32, chars: usize| {
        let mut v = value;
        for _ in 0..chars {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push((u32::from(f[a]) << 16) | (u32::from(f[b]) << 8) | u32::from(f[c]), 4);
    }
    push(u32::from(f[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_openssl_passwd() {
        // `openssl passwd -apr1 -salt abcdefgh good` and `openssl passwd -1 -salt abcdefgh good`.
        assert_eq!(
            hash(b"good", "$apr1$", "abcdefgh"),
            "$apr1$abcdefgh$kBAT1yakViYmAyABaJLaS."
        );
        assert_eq!(hash(b"good", "$1$", "abcdefgh"), "$1$abcdefgh$RFow4IV5kw9VF4CvOq7VZ1");
    }

    #[test]
    fn verifies_and_rejects() {
        let parsed = Md5Crypt::parse("$apr1$abcdefgh$kBAT1yakViYmAyABaJLaS.").unwrap();
        assert!(parsed.verify(b"good"));
        assert!(!parsed.verify(b"Good"));
        assert!(!parsed.verify(b""));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "$apr1$",
            "$apr1$abc",
            "$apr1$abcdefghi$kBAT1yakViYmAyABaJLaS.",
            "$1$ab$short",
            "$2y$x",
        ] {
            assert!(Md5Crypt::parse(bad).is_err(), "{bad}");
        }
    }
}
