//! The client side of SASL SCRAM (RFC 5802) with SHA-256 or SHA-512, on ring: the three messages
//! a Kafka broker expects inside SaslAuthenticate, and the check of the server's signature.

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2};

/// The hash of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        }
    }
    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }
    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// One SCRAM exchange, between the first and the last message.
pub(crate) struct Scram {
    hash: ScramHash,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Vec<u8>,
}

/// `=` and `,` are escaped in SCRAM user names.
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn sign(hash: ScramHash, key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hash.hmac(), key), message)
        .as_ref()
        .to_vec()
}

impl Scram {
    /// Starts an exchange as `user` with `client_nonce` (printable, no comma).
    pub(crate) fn new(hash: ScramHash, user: &str, password: &str, client_nonce: &str) -> Scram {
        Scram {
            hash,
            password: password.to_owned(),
            client_nonce: client_nonce.to_owned(),
            client_first_bare: format!("n={},r={client_nonce}", escape(user)),
            server_signature: Vec::new(),
        }
    }

    /// The client-first message.
    pub(crate) fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message answering `server_first` (`r=...,s=...,i=...`).
    pub(crate) fn client_final(&mut self, server_first: &str) -> Result<String, String> {
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(name))
                .ok_or_else(|| format!("server-first message has no {name}: {server_first:?}"))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.client_nonce) {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = STANDARD
            .decode(field("s=")?)
            .map_err(|e| format!("bad salt: {e}"))?;
        let iterations: u32 = field("i=")?
            .parse()
            .map_err(|_| "bad iteration count".to_string())?;
        let iterations = NonZeroU32::new(iterations).ok_or("iteration count 0")?;
        let mut salted = vec![0u8; self.hash.len()];
        pbkdf2::derive(
            self.hash.pbkdf2(),
            iterations,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let client_key = sign(self.hash, &salted, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = sign(self.hash, stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = sign(self.hash, &salted, b"Server Key");
        self.server_signature = sign(self.hash, &server_key, auth_message.as_bytes());
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks the server-final message (`v=...`, or `e=...` on failure).
    pub(crate) fn check_server_final(&self, server_final: &str) -> Result<(), String> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let v = server_final
            .split(',')
            .find_map(|f| f.strip_prefix("v="))
            .ok_or_else(|| format!("server-final message has no signature: {server_final:?}"))?;
        let v = STANDARD
            .decode(v)
            .map_err(|e| format!("bad signature: {e}"))?;
        if v != self.server_signature {
            return Err("the server's signature does not match (not the broker we know)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SCRAM-SHA-256 example exchange of RFC 7677, section 3.
    #[test]
    fn rfc_7677_example() {
        let mut s = Scram::new(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            s.client_final(server_first).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.check_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(s.check_server_final("v=AAAA").is_err());
        assert!(s.check_server_final("e=invalid-proof").is_err());
    }

    #[test]
    fn refuses_a_nonce_that_is_not_ours() {
        let mut s = Scram::new(ScramHash::Sha512, "a=b,c", "p", "abc");
        assert_eq!(s.client_first(), "n,,n=a=3Db=2Cc,r=abc");
        assert!(s.client_final("r=xyz,s=AAAA,i=4096").is_err());
    }
}
