//! The default scenario's story, on a small scale, and the HTML report's
//! structure (the picture itself is checked by eye in a browser).

use tokenflight_sim::{html, report, run_recipe, run_tokenflight, RunOptions, Scenario};

fn small_default() -> Scenario {
    let mut sc = Scenario::default_run(1);
    sc.requests = 150_000;
    sc
}

#[test]
fn tokenflight_is_clean_and_the_recipe_shows_its_bugs() {
    let sc = small_default();
    let a = run_tokenflight(&sc, RunOptions::default());
    let b = run_recipe(&sc, RunOptions::default());
    assert_eq!(a.violation_count(), 0, "{:?}", a.violations.first());
    assert_eq!(
        (
            a.stats.hung,
            a.stats.lost,
            a.stats.duplicated,
            a.stats.double_refreshes
        ),
        (0, 0, 0, 0)
    );
    assert!(a.stats.refreshes_ok > 0);
    assert_eq!(a.stats.refreshes_per_expiry(), 1.0);
    assert!(b.stats.double_refreshes > 0, "{:?}", b.stats);
    assert!(b.stats.reuse_revocations > 0, "{:?}", b.stats);
    assert!(b.stats.hung > 0 && b.stats.stale_sends > 0, "{:?}", b.stats);
    let table = report::table(&[&a, &b]);
    assert!(table.contains("double refreshes") && table.contains("recipe"));
}

#[test]
fn html_report_has_a_timeline_per_algorithm() {
    let sc = small_default();
    let opts = || RunOptions {
        timeline: Some(html::window(&sc)),
        ..RunOptions::default()
    };
    let reports = vec![run_tokenflight(&sc, opts()), run_recipe(&sc, opts())];
    let page = html::page(&sc, &reports, 1e6);
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    assert_eq!(page.matches("<svg").count(), 2);
    assert_eq!(page.matches("</svg>").count(), 2);
    assert!(page.matches("class=\"lane\"").count() >= 20);
    assert!(page.contains("class=\"refresh ok\""));
    assert!(page.contains("class=\"reject\""));
    assert!(page.contains("class=\"wait\""));
    // Every element opened in the pictures is closed (or self-closing).
    for tag in ["rect", "line", "circle", "path", "text"] {
        let opened = page.matches(&format!("<{tag} ")).count();
        let closed = page.matches(&format!("</{tag}>")).count();
        let selfclosed = page
            .split(&format!("<{tag} "))
            .skip(1)
            .filter(|rest| rest.split('>').next().is_some_and(|t| t.ends_with('/')))
            .count();
        assert_eq!(opened, closed + selfclosed, "<{tag}> unbalanced");
    }
}

#[test]
fn json_summary_has_a_section_per_algorithm() {
    let mut sc = small_default();
    sc.requests = 5_000;
    let a = run_tokenflight(&sc, RunOptions::default());
    let b = run_recipe(&sc, RunOptions::default());
    let v = report::json_summary(&sc, &[&a, &b], 1.0, 10_000.0);
    assert!(v["tokenflight"]["stats"]["requests"].as_u64() == Some(5_000));
    assert!(v["recipe"]["stats"]["requests"].as_u64() == Some(5_000));
    assert!(v["simulator"]["requests_per_sec"].is_number());
}
