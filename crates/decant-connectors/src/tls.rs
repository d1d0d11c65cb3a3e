//! The build's one rustls crypto provider (aws-lc-rs), installed as the process default.

/// Installs aws-lc-rs as the process's rustls crypto provider unless one already is.
///
/// reqwest's rustls backend (built without a provider of its own, so that ring stays out of
/// the build; DESIGN.md, "Known pitfalls") takes the process default when a client is built
/// and panics without one. Idempotent, and cheap after the first call.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another thread is fine: either way the one provider is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}
