//! Access logging: Squid's native format and compiled `logformat`s, and the writers.

mod append;
pub mod format;
mod losses;
mod output;
pub mod record;
pub mod writer;

pub use format::{Format, Needs};
pub use record::{Details, Hierarchy, Record, ResultCode};
pub use writer::{LogSender, LogWriter};
