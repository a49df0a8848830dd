//! TLS for the store's `[store.tls]` listeners, with rustls.
//!
//! Certificates and keys are read at start, where a file that cannot be used
//! fails the start with the config key and path rather than the first
//! handshake, and again on SIGHUP for rotation (see
//! [`crate::store::server::TlsReload`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::store::config::{TlsConfig, TlsVersion};

/// Builds the acceptor for `cfg`: its certificate chain and key, the
/// protocol versions from `min_version`, and client-certificate checking
/// when `client_ca` is set.
pub fn acceptor(cfg: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    // An explicit provider: the process-wide default would depend on which
    // rustls features other crates in the build happen to enable.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let certs = read_certs(&cfg.cert, "store.tls.cert")?;
    warn_if_readable_by_others(&cfg.key);
    let key = PrivateKeyDer::from_pem_file(&cfg.key).with_context(|| {
        format!(
            "store.tls.key: no usable private key in {}",
            cfg.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("store.tls.min_version")?;
    let builder = match &cfg.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "store.tls: the key in {} does not fit the certificate in {}",
            cfg.key.display(),
            cfg.cert.display()
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A private key others can read is as good as published; starting anyway
/// keeps a fleet serving, the warning gets it fixed.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", m.permissions().mode() & 0o777),
            "store.tls.key is accessible to other users; chmod 600 it"
        );
    }
}

fn read_certs(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{key}: cannot read certificates from {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{key}: no certificate in {}", path.display());
    }
    Ok(certs)
}

fn client_verifier(
    ca: &Path,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(ca, "store.tls.client_ca")? {
        roots.add(c).with_context(|| {
            format!(
                "store.tls.client_ca: unusable CA certificate in {}",
                ca.display()
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .with_context(|| format!("store.tls.client_ca: {}", ca.display()))
}
