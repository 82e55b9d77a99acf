//! The system tests, one module per area, linked into one test binary: each separate binary
//! linked the AWS SDK and the HTTP stack again. Select an area by its module path, e.g.
//! `cargo test -p oms-system-tests -- orders::`.

mod adapters;
mod concurrency;
mod console;
mod contract;
mod dead_letters;
mod events;
mod fulfillment;
mod inventory;
mod least_privilege;
mod locations;
mod notifications;
mod operations;
mod orders;
mod payments;
mod returns;
mod shop;
mod timings;
