#![doc = include_str!("../README.md")]

mod error;
mod idempotency;
pub mod page_token;
mod service;

pub use error::ServiceError;
pub use page_token::PageTokenKey;
pub use service::{ListParams, LogService, ServiceConfig, Target};
