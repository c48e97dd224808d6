//! Routable QUIC connection IDs, as in QUIC-LB (draft-ietf-quic-load-balancers-21).
//!
//! A QUIC-aware layer-4 load balancer in front of several servers routes each packet by its
//! destination connection ID, so that a client that changes address (NAT rebinding, a new
//! network) still reaches the server that holds its connection. Each server is given a
//! server ID; every connection ID it issues encodes that ID after a first octet that carries
//! the configuration's rotation bits and the ID's own length:
//!
//! ```text
//! First Octet (8) = Config Rotation (3) | CID Len - 1 (5)
//! Plaintext Block = Server ID (8..120) | Nonce (32..)
//! ```
//!
//! Without a key the server ID is in the clear (observers can tell which server a
//! connection is on). With a 16-octet key and server ID and nonce lengths that sum to 16
//! octets, the block is encrypted once with AES-128-ECB (the draft's single-pass case). The
//! draft's four-pass algorithm for other lengths is not implemented: [`QuicLb::with_key`]
//! refuses such lengths.
//!
//! Everything here is pure: [`QuicLb::encode`] and [`QuicLb::server_id`] are what a server
//! and a load balancer compute; [`QuicLb::generator`] plugs the encoder into quinn.

use std::fmt;
use std::sync::Arc;

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes128;
use burrow_transport::{Error, ErrorKind};
use quinn::{ConnectionId, ConnectionIdGenerator};

/// Longest server ID: 15 octets.
pub const MAX_SERVER_ID_LEN: usize = 15;
/// Shortest nonce: 4 octets.
pub const MIN_NONCE_LEN: usize = 4;
/// Longest server ID and nonce together: QUIC version 1 limits a connection ID to 20
/// octets, one of which is the first octet.
pub const MAX_PLAINTEXT_LEN: usize = 19;
/// The block length of the single-pass encryption: server ID and nonce must sum to it
/// when a key is set.
pub const SINGLE_PASS_LEN: usize = 16;
/// Config rotation codepoint reserved for unroutable connection IDs; a configuration may
/// not use it.
pub const UNROUTABLE_ROTATION: u8 = 0b111;

/// One QUIC-LB configuration as a server holds it: rotation codepoint, this server's ID,
/// nonce length and, optionally, the key.
#[derive(Clone)]
pub struct QuicLb {
    rotation: u8,
    server_id: Vec<u8>,
    nonce_len: usize,
    cipher: Option<Arc<Aes128>>,
}

impl fmt::Debug for QuicLb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicLb")
            .field("rotation", &self.rotation)
            .field("server_id", &hex(&self.server_id))
            .field("nonce_len", &self.nonce_len)
            .field("key", &self.cipher.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn invalid(msg: String) -> Error {
    Error::user(ErrorKind::InvalidInput, format!("QUIC-LB: {msg}"))
}

impl QuicLb {
    /// An unencrypted configuration: connection IDs carry `server_id` in the clear after
    /// the first octet, then `nonce_len` random octets. `rotation` is 0 to 6; the server ID
    /// is 1 to [`MAX_SERVER_ID_LEN`] octets; the nonce at least [`MIN_NONCE_LEN`]; the two
    /// together at most [`MAX_PLAINTEXT_LEN`].
    pub fn new(rotation: u8, server_id: &[u8], nonce_len: usize) -> Result<QuicLb, Error> {
        if rotation >= UNROUTABLE_ROTATION {
            return Err(invalid(format!(
                "config rotation {rotation} is not 0 to 6 (7 marks unroutable IDs)"
            )));
        }
        if server_id.is_empty() || server_id.len() > MAX_SERVER_ID_LEN {
            return Err(invalid(format!(
                "a server ID is 1 to {MAX_SERVER_ID_LEN} octets, not {}",
                server_id.len()
            )));
        }
        if nonce_len < MIN_NONCE_LEN {
            return Err(invalid(format!(
                "a nonce is at least {MIN_NONCE_LEN} octets, not {nonce_len}"
            )));
        }
        if server_id.len() + nonce_len > MAX_PLAINTEXT_LEN {
            return Err(invalid(format!(
                "server ID ({}) and nonce ({nonce_len}) exceed {MAX_PLAINTEXT_LEN} octets",
                server_id.len()
            )));
        }
        Ok(QuicLb {
            rotation,
            server_id: server_id.to_vec(),
            nonce_len,
            cipher: None,
        })
    }

    /// The same configuration with a key: server ID and nonce must sum to
    /// [`SINGLE_PASS_LEN`] octets (the draft's single-pass encryption).
    pub fn with_key(mut self, key: [u8; 16]) -> Result<QuicLb, Error> {
        let len = self.server_id.len() + self.nonce_len;
        if len != SINGLE_PASS_LEN {
            return Err(invalid(format!(
                "with a key, server ID and nonce must sum to {SINGLE_PASS_LEN} octets \
                 (single-pass encryption), not {len}; the four-pass algorithm is not implemented"
            )));
        }
        self.cipher = Some(Arc::new(Aes128::new(&key.into())));
        Ok(self)
    }

    /// Length of every connection ID issued under this configuration.
    pub fn cid_len(&self) -> usize {
        1 + self.server_id.len() + self.nonce_len
    }

    /// This server's ID.
    pub fn own_server_id(&self) -> &[u8] {
        &self.server_id
    }

    /// The connection ID for `nonce` (exactly the configured nonce length): the first octet
    /// self-encodes the length, then the (encrypted, with a key) server ID and nonce.
    pub fn encode(&self, nonce: &[u8]) -> Result<Vec<u8>, Error> {
        if nonce.len() != self.nonce_len {
            return Err(invalid(format!(
                "nonce of {} octets where {} are configured",
                nonce.len(),
                self.nonce_len
            )));
        }
        let mut cid = Vec::with_capacity(self.cid_len());
        // The 5 length bits hold the length of what follows the first octet (at most 19).
        cid.push(self.rotation << 5 | (self.cid_len() - 1) as u8);
        cid.extend_from_slice(&self.server_id);
        cid.extend_from_slice(nonce);
        if let Some(c) = &self.cipher {
            let block = aes::Block::from_mut_slice(&mut cid[1..1 + SINGLE_PASS_LEN]);
            c.encrypt_block(block);
        }
        Ok(cid)
    }

    /// What a load balancer holding this configuration reads from a destination
    /// connection ID: the server ID, or `None` when the ID is not routable by it (another
    /// config rotation, the unroutable codepoint, or too short).
    pub fn server_id(&self, cid: &[u8]) -> Option<Vec<u8>> {
        let first = *cid.first()?;
        if first >> 5 != self.rotation || cid.len() < self.cid_len() {
            return None;
        }
        let sid = self.server_id.len();
        match &self.cipher {
            None => Some(cid[1..1 + sid].to_vec()),
            Some(c) => {
                let mut block = aes::Block::clone_from_slice(&cid[1..1 + SINGLE_PASS_LEN]);
                c.decrypt_block(&mut block);
                Some(block[..sid].to_vec())
            }
        }
    }

    /// A quinn connection ID generator issuing this configuration's IDs with random nonces
    /// (for `quinn::EndpointConfig::cid_generator`).
    pub fn generator(&self) -> Box<dyn ConnectionIdGenerator> {
        Box::new(Generator(self.clone()))
    }
}

struct Generator(QuicLb);

impl ConnectionIdGenerator for Generator {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut nonce = [0u8; MAX_PLAINTEXT_LEN];
        let nonce = &mut nonce[..self.0.nonce_len];
        // The system's random source through rustls's provider; it does not fail on Linux,
        // and if it ever did the nonce would stay zero and quinn would retry on collision.
        let _ = rustls::crypto::ring::default_provider()
            .secure_random
            .fill(nonce);
        match self.0.encode(nonce) {
            Ok(cid) => ConnectionId::new(&cid),
            // Unreachable: the nonce has the configured length.
            Err(_) => ConnectionId::new(&[]),
        }
    }

    fn cid_len(&self) -> usize {
        self.0.cid_len()
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const KEY: &str = "8f95f09245765f80256934e50c66207f";

    #[test]
    fn unencrypted_test_vector() {
        // The draft's first unencrypted vector: cr 0, sid c4605e, nonce 4504cc4f.
        let lb = QuicLb::new(0, &unhex("c4605e"), 4).unwrap();
        let cid = lb.encode(&unhex("4504cc4f")).unwrap();
        assert_eq!(hex(&cid), "07c4605e4504cc4f");
        assert_eq!(lb.server_id(&cid).unwrap(), unhex("c4605e"));
    }

    #[test]
    fn single_pass_test_vector() {
        // The draft's single-pass vector: cr 2, sid ed793a51d49b8f5f, nonce ee080dbf48c0d1e5.
        let key: [u8; 16] = unhex(KEY).try_into().unwrap();
        let lb = QuicLb::new(2, &unhex("ed793a51d49b8f5f"), 8)
            .unwrap()
            .with_key(key)
            .unwrap();
        let cid = lb.encode(&unhex("ee080dbf48c0d1e5")).unwrap();
        assert_eq!(hex(&cid), "504dd2d05a7b0de9b2b9907afb5ecf8cc3");
        assert_eq!(lb.server_id(&cid).unwrap(), unhex("ed793a51d49b8f5f"));
        // The server ID does not appear in the clear.
        assert!(!hex(&cid).contains("ed793a51"));
    }

    #[test]
    fn limits_are_checked() {
        assert!(QuicLb::new(UNROUTABLE_ROTATION, &[1], 8).is_err());
        assert!(QuicLb::new(6, &[1], 8).is_ok());
        assert!(QuicLb::new(0, &[], 8).is_err());
        assert!(QuicLb::new(0, &[0; MAX_SERVER_ID_LEN], MIN_NONCE_LEN).is_ok());
        assert!(QuicLb::new(0, &[0; MAX_SERVER_ID_LEN + 1], MIN_NONCE_LEN).is_err());
        assert!(QuicLb::new(0, &[1], MIN_NONCE_LEN - 1).is_err());
        assert!(QuicLb::new(0, &[1, 2], MAX_PLAINTEXT_LEN - 2).is_ok());
        let e = QuicLb::new(0, &[1, 2], MAX_PLAINTEXT_LEN - 1).unwrap_err();
        assert!(e.to_string().contains("exceed 19 octets"), "{e}");
        let four_pass = QuicLb::new(0, &[1, 2, 3], 4).unwrap().with_key([7; 16]);
        assert!(four_pass
            .unwrap_err()
            .to_string()
            .contains("four-pass algorithm is not implemented"));
        let lb = QuicLb::new(0, &[1, 2], 8).unwrap();
        assert!(lb.encode(&[0; 7]).is_err());
    }

    #[test]
    fn generated_ids_route_to_their_server_and_differ() {
        let key: [u8; 16] = unhex(KEY).try_into().unwrap();
        for lb in [
            QuicLb::new(1, &[0xab, 0xcd], 8).unwrap(),
            QuicLb::new(3, &[0x42; 4], 12)
                .unwrap()
                .with_key(key)
                .unwrap(),
        ] {
            let mut g = lb.generator();
            let a = g.generate_cid();
            let b = g.generate_cid();
            assert_ne!(a, b);
            for cid in [&a, &b] {
                assert_eq!(cid.len(), lb.cid_len());
                assert_eq!(g.cid_len(), lb.cid_len());
                assert_eq!(lb.server_id(cid).unwrap(), lb.own_server_id());
                assert_eq!(cid[0] & 0x1f, (lb.cid_len() - 1) as u8);
            }
        }
    }

    #[test]
    fn other_rotations_and_short_ids_are_unroutable() {
        let lb = QuicLb::new(1, &[9], 4).unwrap();
        let cid = lb.encode(&[1, 2, 3, 4]).unwrap();
        let other = QuicLb::new(2, &[9], 4).unwrap();
        assert_eq!(other.server_id(&cid), None);
        assert_eq!(lb.server_id(&cid[..3]), None);
        assert_eq!(lb.server_id(&[]), None);
    }

    #[test]
    fn arbitrary_configurations_and_ids() {
        let mut next = burrow_test_support::rng(0x51b);
        for _ in 0..5000 {
            let n = usize::from(next()) % 80;
            let data: Vec<u8> = (0..n).map(|_| next()).collect();
            crate::fuzzing::quic_lb(&data);
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let lb = QuicLb::new(0, &[1], 15)
            .unwrap()
            .with_key([0x5a; 16])
            .unwrap();
        let d = format!("{lb:?}");
        assert!(d.contains("<redacted>") && !d.contains("5a5a"), "{d}");
    }
}
