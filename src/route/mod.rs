//! Egress: choosing the next hop, parent health and failover, DNS, dialing direct or
//! through a parent. Never reads a client's head; `serve` hands it what it needs.

pub mod dial;
pub mod dns;
pub mod egress;
pub mod health;
pub mod select;
pub mod tunnel;

pub use egress::Egress;
