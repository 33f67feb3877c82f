//! Just enough DER reading to show a certificate's subject, issuer and DNS names.
//!
//! Trust decisions are rustls/webpki's; this only describes what was presented, so a
//! truncated or odd certificate yields fewer facts, never an error.

/// The facts trace prints about a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// One TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (
            rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize),
            &rest[n..],
        )
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

fn children(mut input: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((tag, body, rest)) = tlv(input) {
        out.push((tag, body));
        input = rest;
    }
    out
}

/// `CN=…, O=…` from a Name, CN first.
fn name_text(name: &[u8]) -> String {
    let mut cn = Vec::new();
    let mut org = Vec::new();
    for (_, set) in children(name) {
        for (_, atv) in children(set) {
            let parts = children(atv);
            if let [(0x06, oid), (_, value), ..] = parts.as_slice() {
                let text = String::from_utf8_lossy(value).to_string();
                if *oid == OID_CN {
                    cn.push(format!("CN={text}"));
                } else if *oid == OID_O {
                    org.push(format!("O={text}"));
                }
            }
        }
    }
    cn.extend(org);
    cn.join(", ")
}

/// The subject's first common name, if any.
pub fn common_name(der: &[u8]) -> Option<String> {
    summarize(der)
        .subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .map(str::to_string)
}

/// Describes a DER certificate.
pub fn summarize(der: &[u8]) -> CertSummary {
    let mut summary = CertSummary::default();
    let Some((_, cert, _)) = tlv(der) else { return summary };
    let Some((_, tbs, _)) = tlv(cert) else { return summary };
    let mut fields = children(tbs);
    if fields.first().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.remove(0);
    }
    // serial, signature algorithm, issuer, validity, subject, spki, then optional [1] [2] [3].
    if fields.len() < 6 {
        return summary;
    }
    summary.issuer = name_text(fields[2].1);
    summary.subject = name_text(fields[4].1);
    if let Some((_, exts)) = fields.iter().find(|(tag, _)| *tag == 0xa3) {
        let exts = children(exts)
            .into_iter()
            .next()
            .map(|(_, seq)| children(seq))
            .unwrap_or_default();
        for (_, ext) in exts {
            let parts = children(ext);
            let Some((0x06, oid)) = parts.first() else { continue };
            if *oid != OID_SAN {
                continue;
            }
            if let Some((0x04, value)) = parts.last()
                && let Some((_, names, _)) = tlv(value)
            {
                for (tag, name) in children(names) {
                    if tag == 0x82 {
                        summary.dns_names.push(String::from_utf8_lossy(name).to_string());
                    }
                }
            }
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_an_rcgen_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string(), "b.example".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "a.example");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Org");
        let cert = params.self_signed(&key).unwrap();
        let s = summarize(cert.der());
        assert_eq!(s.subject, "CN=a.example, O=Org");
        assert_eq!(s.issuer, "CN=a.example, O=Org");
        assert_eq!(s.dns_names, vec!["a.example", "b.example"]);
    }
}
