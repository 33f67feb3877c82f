//! The squid.conf dialect: text → directives with file and line → validated [`Config`].

pub mod check;
pub mod model;

pub use model::*;
mod stub_loader;
pub use stub_loader::{Loaded, load};
