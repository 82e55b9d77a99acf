//! The operations the functions call. Each takes its ports as generic parameters, so the same
//! code runs against DynamoDB in Lambda and against [`crate::memory`] in tests.

pub mod caller;
pub mod fulfillment;
pub mod intake;
pub mod inventory;
pub mod locations;
pub mod notify;
pub mod payments;
pub mod queries;
pub mod reservation;
pub mod retry;
pub mod returns;
pub mod staff;
pub mod sweep;
pub mod views;

pub use caller::Caller;
