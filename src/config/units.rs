//! Squid's value syntax for times (`30 seconds`, `1 minute`, `2 hours`) and sizes (`64 KB`).
//! A number without a unit takes the directive's default unit, as in Squid.

use std::time::Duration;

use super::lexer::Token;

const TIME_UNITS: &[(&str, f64)] = &[
    ("millisecond", 0.001),
    ("second", 1.0),
    ("minute", 60.0),
    ("hour", 3600.0),
    ("day", 86_400.0),
    ("week", 7.0 * 86_400.0),
    ("fortnight", 14.0 * 86_400.0),
    ("month", 30.0 * 86_400.0),
    ("year", 365.0 * 86_400.0),
    ("decade", 3650.0 * 86_400.0),
];

const SIZE_UNITS: &[(&str, u64)] = &[("byte", 1), ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30)];

fn number(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("'{text}' is not a number"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("'{text}' is not a non-negative number"));
    }
    Ok(value)
}

/// Parses `N [unit]`; `default_unit_secs` applies to a bare number.
pub fn parse_duration(args: &[Token], default_unit_secs: f64) -> Result<Duration, String> {
    let (value, unit) = match args {
        [value] => (number(&value.text)?, default_unit_secs),
        [value, unit] => {
            let lowered = unit.text.to_ascii_lowercase();
            let singular = lowered.strip_suffix('s').unwrap_or(&lowered);
            let factor = TIME_UNITS
                .iter()
                .find(|(name, _)| *name == singular)
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    format!(
                        "unknown time unit '{}' (use milliseconds, seconds, minutes, hours, days or weeks)",
                        unit.text
                    )
                })?;
            (number(&value.text)?, factor)
        }
        [] => return Err("missing time value".into()),
        _ => return Err("expected a time such as '30 seconds'".into()),
    };
    let secs = value * unit;
    Duration::try_from_secs_f64(secs).map_err(|_| "time value out of range".to_string())
}

/// Parses `N [bytes|KB|MB|GB]`; a bare number is bytes.
pub fn parse_size(args: &[Token]) -> Result<u64, String> {
    let (value, factor) = match args {
        [value] => (number(&value.text)?, 1),
        [value, unit] => {
            let lowered = unit.text.to_ascii_lowercase();
            let singular = lowered.strip_suffix('s').unwrap_or(&lowered);
            let factor = SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == singular)
                .map(|(_, f)| *f)
                .ok_or_else(|| format!("unknown size unit '{}' (use bytes, KB, MB or GB)", unit.text))?;
            (number(&value.text)?, factor)
        }
        [] => return Err("missing size value".into()),
        _ => return Err("expected a size such as '64 KB'".into()),
    };
    let bytes = value * factor as f64;
    if bytes > u64::MAX as f64 {
        return Err("size out of range".into());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Token> {
        s.split_whitespace()
            .map(|t| Token {
                text: t.to_string(),
                quoted: false,
            })
            .collect()
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("30 seconds", Some(30)),
            ("1 second", Some(1)),
            ("1 minute", Some(60)),
            ("15 minutes", Some(900)),
            ("2 hours", Some(7200)),
            ("1 day", Some(86_400)),
            ("2 Days", Some(172_800)),
            ("1 week", Some(604_800)),
            ("45", Some(45)),
            ("1.5 minutes", Some(90)),
            ("", None),
            ("x seconds", None),
            ("5 parsecs", None),
            ("-1 seconds", None),
            ("1 2 3", None),
        ];
        for (input, expected) in cases {
            let got = parse_duration(&toks(input), 1.0).ok().map(|d| d.as_secs());
            assert_eq!(got, *expected, "input {input:?}");
        }
        assert_eq!(
            parse_duration(&toks("500 milliseconds"), 1.0).unwrap(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<u64>)] = &[
            ("64 KB", Some(65_536)),
            ("1 MB", Some(1_048_576)),
            ("1 GB", Some(1 << 30)),
            ("100 bytes", Some(100)),
            ("1 byte", Some(1)),
            ("512", Some(512)),
            ("2 kb", Some(2048)),
            ("1 TB", None),
            ("KB", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_size(&toks(input)).ok(), *expected, "input {input:?}");
        }
    }
}
