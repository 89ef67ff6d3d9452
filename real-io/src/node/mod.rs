//! One storage node of a real cluster: its configuration ([`spec`]), drives ([`drives`]), admin endpoint
//! and failure detector ([`admin`]), server-side request metrics ([`metered_net`]), and the boot that composes the cluster logic over the real
//! environment ([`run`]).

pub mod admin;
pub mod drives;
pub mod metered_net;
pub mod run;
pub mod spec;
