//! Access logging in Squid's native format.

mod append;
mod losses;
mod output;
pub mod record;
pub mod writer;

pub use record::{Hierarchy, Record, ResultCode};
pub use writer::{LogSender, LogWriter};
