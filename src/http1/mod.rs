//! HTTP/1.x plumbing shared by the server side and the dialing side: heads, framing, buffers.

pub mod body;
pub mod conn;
pub mod head;

pub use body::{BodyKind, copy_body, copy_body_counted};
pub use conn::{BufConn, HeadError};
pub use head::{Header, RequestHead, ResponseHead};
