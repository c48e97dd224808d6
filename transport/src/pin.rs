//! Public-key pinning (curl's `--pinnedpubkey`): after the usual verification, the server's
//! certificate must carry one of the pinned public keys, named by the SHA-256 of its DER
//! `SubjectPublicKeyInfo`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::{Error, ErrorKind, Result};

/// The largest public key file read (a PEM RSA-8192 key is under 2 KiB).
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// A SHA-256 of a DER `SubjectPublicKeyInfo`.
pub type Pin = [u8; 32];

/// The failure a pinned key mismatch is reported with (inside rustls' error).
#[derive(Debug)]
pub struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server's public key is not one of the pinned keys")
    }
}

impl std::error::Error for PinMismatch {}

fn sha256(b: &[u8]) -> Pin {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Parses curl's `--pinnedpubkey` value: `sha256//BASE64[;sha256//BASE64…]`, or the path of
/// a public key file (PEM `PUBLIC KEY` or DER).
pub fn parse_pins(spec: &str) -> Result<Vec<Pin>> {
    let bad = |why: String| Error::invalid_input(format!("pinned key: {why}"));
    if spec.starts_with("sha256//") {
        use base64::Engine as _;
        return spec
            .split(';')
            .map(|p| {
                let b64 = p
                    .trim()
                    .strip_prefix("sha256//")
                    .ok_or_else(|| bad(format!("{p:?} is not sha256//BASE64")))?;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| bad(format!("{p:?} is not base64")))?;
                raw.try_into()
                    .map_err(|_| bad(format!("{p:?} is not 32 bytes")))
            })
            .collect();
    }
    let mut raw = Vec::new();
    std::fs::File::open(Path::new(spec))
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_KEY_FILE + 1), &mut raw)
        })
        .map_err(|e| {
            Error::invalid_input(format!("cannot read the pinned key {spec}")).with_source(e)
        })?;
    if raw.len() as u64 > MAX_KEY_FILE {
        return Err(bad(format!("{spec} is larger than {MAX_KEY_FILE} bytes")));
    }
    let text = String::from_utf8_lossy(&raw);
    let der = match text.find("-----BEGIN PUBLIC KEY-----") {
        Some(start) => {
            use base64::Engine as _;
            let body = &text[start + "-----BEGIN PUBLIC KEY-----".len()..];
            let end = body
                .find("-----END PUBLIC KEY-----")
                .ok_or_else(|| bad(format!("{spec}: unterminated PEM")))?;
            let b64: String = body[..end].split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad(format!("{spec}: bad PEM")))?
        }
        None => raw,
    };
    Ok(vec![sha256(&der)])
}

/// The pin of a certificate's public key.
pub fn pin_of(cert: &CertificateDer<'_>) -> Result<Pin> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| {
        Error::peer(
            ErrorKind::Certificate,
            format!("cannot parse the certificate: {e}"),
        )
    })?;
    Ok(sha256(ee.subject_public_key_info().as_ref()))
}

/// Verifies as `inner` does, then requires a pinned key.
#[derive(Debug)]
pub(crate) struct Pinned {
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    pub(crate) pins: Vec<Pin>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let mismatch = || {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                PinMismatch,
            ))))
        };
        let pin = pin_of(end_entity).map_err(|_| mismatch())?;
        if self.pins.contains(&pin) {
            Ok(ok)
        } else {
            Err(mismatch())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_as_curl_writes_them() {
        use base64::Engine as _;
        let a = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let b = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
        let pins = parse_pins(&format!("sha256//{a};sha256//{b}")).unwrap();
        assert_eq!(pins, [[1u8; 32], [2u8; 32]]);
        assert!(parse_pins("sha256//notbase64!").is_err());
        assert!(parse_pins("sha256//AAAA").is_err(), "too short");
        assert!(parse_pins("/no/such/key.pem").is_err());
        // A key file past MAX_KEY_FILE is refused, not read whole.
        let big = std::env::temp_dir().join(format!("burrow-bigkey-{}", std::process::id()));
        std::fs::write(&big, vec![b'k'; MAX_KEY_FILE as usize + 1]).unwrap();
        let e = parse_pins(&big.display().to_string()).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        let _ = std::fs::remove_file(big);
    }
}
