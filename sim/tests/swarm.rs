//! A modest swarm: fifty seeds, each with its own drawn scenario, and the
//! real core breaks no rule on any of them.

use tokenflight_sim::swarm;
use tokenflight_sim::SimCore;

#[test]
fn fifty_seeds_pass() {
    let make = |c| SimCore::new(c).unwrap();
    let out = swarm::run(1_000..1_050, 3_000, &make, None, false);
    assert_eq!(out.seeds, 50);
    assert!(out.requests > 20_000);
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
}
