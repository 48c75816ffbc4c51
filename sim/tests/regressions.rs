//! Every saved regression trace, replayed forever: the real core must pass
//! it, and the planted bug it was found with must still be caught on it.

use tokenflight::core::Mutant;
use tokenflight_sim::swarm::load_regressions;
use tokenflight_sim::{run_tokenflight, run_tokenflight_with, RunOptions, SimCore};

#[test]
fn regression_traces_replay() {
    let all = load_regressions().unwrap();
    assert!(!all.is_empty(), "no regression traces found");
    for reg in all {
        let real = run_tokenflight(&reg.scenario, RunOptions::default());
        assert_eq!(
            real.violation_count(),
            0,
            "{}: the real core breaks {:?}",
            reg.name,
            real.violations.first()
        );
        if let Some(name) = &reg.mutant {
            let m = Mutant::ALL
                .into_iter()
                .find(|m| format!("{m:?}") == *name)
                .unwrap_or_else(|| panic!("{}: unknown mutant {name}", reg.name));
            let r = run_tokenflight_with(&reg.scenario, RunOptions::default(), |c| {
                SimCore::with_mutant(c, m).unwrap()
            });
            let n = r
                .rule_counts
                .iter()
                .find(|(k, _)| *k == reg.rule)
                .map_or(0, |(_, n)| *n);
            assert!(n > 0, "{}: {name} no longer breaks {}", reg.name, reg.rule);
        }
    }
}
