//! The harness's native multi-process tests, one module per behaviour in one binary (one
//! link of the server, the harness and the client core, not four). They need a
//! `redis-server` on the PATH.
//!
//! The chaos test (`tests/chaos.rs`) stays a binary of its own: it loads both cores for
//! 30 s (longer as a soak, `--test chaos`), which would slow the timed waits of these.

mod balancer;
mod cluster_broker;
mod instances;
mod redis_broker;
mod redis_cluster;
mod redis_failover;
mod redis_server;
mod scale_out;
