//! TLS on the proxy legs: `https_port` listeners (with client certificates), `cache_peer … tls`
//! connections to a parent, the stream type both sides share, and the few certificate facts
//! hopproxy reads (the subject for ACLs and logs). TLS to origins is never touched: CONNECT
//! tunnels carry the client's own TLS end to end.

pub mod failure;
pub mod settings;
pub mod stream;
pub mod x509;

pub use failure::TlsFailure;
pub use settings::{ListenTls, PeerTls, TlsVersion};
pub use stream::Stream;
