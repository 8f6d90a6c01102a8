//! A reused tuple leaves a draining backend.

use super::lab::*;

/// A client reusing its port resumes its backend and NAT port only while that backend takes new
/// flows: once it drains, the reused tuple is scheduled afresh.
pub fn run() {
    let web = vec![backend("web1", "198.51.100.11"), backend("web2", "198.51.100.12")];
    let mut www = www_lab(web);
    let WwwLab { dp, services, n, .. } = &mut www;
    run_cases(dp, Trust::Trusted, vec![first_flow_to_web1(n)]);
    close_drain_and_reuse(dp, services, n);
}
