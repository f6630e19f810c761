//! Integration tests of the service crate against real servers on loopback.

mod moto;
mod s3;
