//! # oms-adapters: the domain's ports on AWS, and the edges of every function
//!
//! The domain crate states what the system needs (`OrderStore`, `InventoryStore`,
//! `OrderTransactions`); this crate provides it on AWS, and holds what every function shares at its
//! edges. It depends on the domain, never the other way round.
//!
//! ## Layout
//! - [`app`]: what a function whose only need is the store builds once per cold start, and why a
//!   queue consumer did not process a message.
//! - [`config`]: typed configuration from the environment, read once per cold start; it fails fast
//!   and names the missing variable. Every AWS endpoint follows `AWS_ENDPOINT_URL`, so the same
//!   binary runs against AWS, the local emulator, or any DynamoDB-compatible endpoint.
//! - [`dynamo`]: the single-table DynamoDB store: item layout, keys, conditional and
//!   transactional writes (with `serde_dynamo` for the mapping).
//! - [`aws_error`]: the one place an AWS SDK error becomes a domain `StoreError`, retryable or not.
//! - [`sns`]: publishing CloudEvents to SNS in batches, retrying per-entry failures.
//! - [`sqs`]: processing a queue batch message by message, reporting partial batch failures.
//! - [`label`]: the printable return label (a 4×6 inch PDF with the RMA as a Code 128 barcode),
//!   for the returns API and the console alike.
//! - [`dead_letters`]: the dead-letter queues' depths, and their redrive by SQS message move tasks.
//! - [`metrics`]: business figures as CloudWatch embedded metric format lines.
//! - [`signing`]: signed webhooks (a timestamp and HMAC-SHA256 signatures, several for a secret's
//!   rotation), checked in constant time within a replay window.
//! - [`secrets`]: secrets from Secrets Manager, read on first use and cached for a while.
//! - [`stripe`]: Stripe's API as the system calls it (the payment provider's port).
//! - [`web`]: what the browser pages share: encrypted session cookies and forms' CSRF tokens.
//! - [`http`]: the HTTP edge: the caller from the JWT authorizer's claims, request bodies, JSON
//!   responses, and the one mapping from errors to `application/problem+json` (RFC 9457).

pub mod app;
pub mod aws_error;
pub mod config;
pub mod dead_letters;
pub mod dynamo;
pub mod http;
pub mod label;
pub mod metrics;
pub mod secrets;
pub mod signing;
pub mod sns;
pub mod sqs;
pub mod stripe;
pub mod web;
