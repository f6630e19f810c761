#![doc = include_str!("../README.md")]

mod error;
pub mod export;
pub mod page_token;
pub mod retention;
mod service;

pub use error::ServiceError;
pub use export::{ExportConfig, ExportService};
pub use page_token::PageTokenKey;
pub use service::{ListParams, LogService, ServiceConfig, Target};
