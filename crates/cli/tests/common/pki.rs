//! A test PKI: a CA, a server certificate (localhost, 127.0.0.1) and a
//! client certificate made with rcgen for each test, never stored in the
//! repository.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::PathBuf;
use std::time::Duration;

/// PEM files of a test PKI, in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

#[allow(clippy::new_without_default)]
impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "skald test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();

        let leaf = |name: &str, sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        };
        leaf(
            "server",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        leaf("client", vec![], ExtendedKeyUsagePurpose::ClientAuth);

        // A certificate of another CA, and a key of nobody's certificate.
        let other_key = KeyPair::generate().unwrap();
        let other = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&other_key)
            .unwrap();
        std::fs::write(dir.path().join("other.pem"), other.pem()).unwrap();
        std::fs::write(
            dir.path().join("stray.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// The test's own HTTP client: trusts the CA, presents the client
    /// certificate when `with_cert`.
    pub fn client(&self, with_cert: bool) -> reqwest::blocking::Client {
        let ca = reqwest::Certificate::from_pem(&self.pem("ca.pem")).unwrap();
        let mut b = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .tls_certs_only([ca]);
        if with_cert {
            let mut pem = self.pem("client.pem");
            pem.extend(self.pem("client.key"));
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }
}
