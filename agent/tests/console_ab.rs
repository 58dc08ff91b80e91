//! The A/B page at the router's `/ab` in headless Chromium: a real router (in process) over
//! two real `serve` processes with the test model. One prompt goes to both variants, the
//! answers stream side by side with their figures, a vote reaches the router's `/metrics` and
//! its download (the prompt as a hash only), saved prompts run in one click, and `compare
//! --votes-from` puts the votes in its report. Screenshots are kept as test artefacts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod console_support;
mod route_support;
mod serve_support;

use std::time::Duration;

use console_support::{Browser, chromium_available};
use route_support::{Router, table, variant};
use serde_json::{Value, json};
use serve_support::process::spawn_server;
use serve_support::{MODEL, agent_command};
use sha2::{Digest, Sha256};

/// How long answers of a few tokens may take (debug build, 2 shared cores, Chromium).
const ANSWER: Duration = Duration::from_secs(180);
const PROMPT: &str = "Is a verbal agreement binding?";

/// Every round's columns as [variant, answer, figures] once the round's vote bar is there.
const ROUNDS: &str = "return [...document.querySelectorAll('#rounds .round')].map(r =>
     r.querySelector('.vote') ? [...r.querySelectorAll('.column')].map(c =>
       [c.dataset.variant, c.querySelector('.assistant').textContent,
        JSON.parse(c.querySelector('.figures').dataset.figures || 'null')]) : null);";

async fn vote_shown(browser: &Browser) -> Value {
    browser
        .wait_for(
            "the vote taken",
            Duration::from_secs(10),
            "const v = document.querySelector('#rounds .round .vote'); return v && v.dataset.voted || null;",
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ab_page_streams_two_variants_side_by_side_and_counts_the_vote() {
    if !chromium_available() {
        return;
    }
    let Some(blue) = spawn_server(None, &["--parallel", "1"]).await else {
        return;
    };
    let Some(green) = spawn_server(None, &["--parallel", "1"]).await else {
        return;
    };
    let mut variants = vec![
        variant("blue", &blue.base, 50),
        variant("green", &green.base, 50),
    ];
    for v in &mut variants {
        v.model = MODEL.into();
    }
    let router = Router::start(&table(variants, vec![])).await;
    let page = router
        .client
        .get(format!("{}/ab", router.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");

    let browser = Browser::start().await;
    browser.open(&format!("{}/ab", router.base)).await;
    browser
        .wait_for(
            "both variants listed and chosen",
            Duration::from_secs(10),
            "return document.querySelectorAll('#variants input:checked').length === 2;",
        )
        .await;
    browser.set_value("#max-tokens", "8").await;
    browser.set_value("#q", PROMPT).await;
    browser.click("#run").await;
    let rounds = browser
        .wait_for(
            "both answers",
            ANSWER,
            &format!("const r = (() => {{ {ROUNDS} }})(); return r[0] || null;"),
        )
        .await;
    for (column, name) in rounds.as_array().unwrap().iter().zip(["blue", "green"]) {
        assert_eq!(column[0], name, "{rounds}");
        let text = column[1].as_str().unwrap();
        assert!(
            !text.trim().is_empty() && !text.starts_with("error:"),
            "{rounds}"
        );
        // The router's x-llamafleet-variant header names who answered.
        assert_eq!(column[2]["variant"], name, "{rounds}");
        assert!(column[2]["ttft_ms"].as_f64().unwrap() > 0.0, "{rounds}");
        assert!(
            column[2]["completion_tokens"].as_u64().unwrap() <= 8,
            "{rounds}"
        );
    }
    for server in [&blue, &green] {
        let metrics = server.text("/metrics").await;
        assert!(
            metrics.contains(r#"llamafleet_agent_http_requests_total{api="openai",route="/v1/chat/completions",status="200"} 1"#),
            "each variant answered once: {metrics}"
        );
    }

    browser
        .set_value("#rounds .vote .comment", "green cites the statute")
        .await;
    browser
        .click("#rounds .vote button[data-winner='green']")
        .await;
    assert_eq!(vote_shown(&browser).await, "green");
    let metrics = router.metrics().await;
    for line in [
        r#"llamafleet_router_votes_total{other="blue",outcome="win",variant="green"} 1"#,
        r#"llamafleet_router_votes_total{other="green",outcome="loss",variant="blue"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    browser
        .wait_for(
            "the tally",
            Duration::from_secs(10),
            "const r = document.querySelector('#tally tr[data-variant=green]'); return r && r.cells[1].textContent === '1';",
        )
        .await;
    let download = router.get_text("/console/votes.jsonl").await;
    let records: Vec<Value> = download
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{download}");
    let record = &records[0];
    assert_eq!(
        record["prompt_sha256"],
        hex::encode(Sha256::digest(PROMPT.as_bytes()))
    );
    assert!(record.get("prompt").is_none(), "prompt text kept: {record}");
    assert!(!download.contains("verbal"), "{download}");
    assert_eq!(record["winner"], "green");
    assert_eq!(record["comment"], "green cites the statute");
    assert_eq!(record["answers"][0]["variant"], "blue");
    assert!(
        record["answers"][1]["ttft_ms"].as_f64().unwrap() > 0.0,
        "{record}"
    );
    browser.screenshot("ab-desktop", 1280, 900).await;
    browser.screenshot("ab-phone", 390, 844).await;

    // Saved prompts, run in one click: one round each, newest first; a tie on the last.
    browser.click("#saved summary").await;
    browser
        .set_value("#prompts", "What is a tort?\nWhat is a lien?")
        .await;
    browser.click("#run-all").await;
    browser
        .wait_for(
            "three rounds answered",
            ANSWER,
            &format!("const r = (() => {{ {ROUNDS} }})(); return r.length === 3 && r.every(x => x !== null);"),
        )
        .await;
    let prompts = browser
        .script("return [...document.querySelectorAll('#rounds .round .prompt')].map(p => p.textContent);")
        .await;
    assert_eq!(
        prompts,
        json!(["What is a lien?", "What is a tort?", PROMPT])
    );
    browser
        .click("#rounds .round .vote button[data-winner='']")
        .await;
    assert_eq!(vote_shown(&browser).await, "tie");
    assert!(router.metrics().await.contains(
        r#"llamafleet_router_votes_total{other="blue",outcome="tie",variant="green"} 1"#
    ));

    // compare: the votes beside its own figures.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prompts.txt"), "Hello\n").unwrap();
    let mut command = agent_command();
    command
        .arg("compare")
        .args(["--endpoint", &router.base, "--variants", "blue,green"])
        .args(["--votes-from", &router.base, "--max-tokens", "4"])
        .arg("--prompts")
        .arg(dir.path().join("prompts.txt"))
        .arg("--out")
        .arg(dir.path().join("report"));
    let status = tokio::task::spawn_blocking(move || command.status().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["votes"]["variants"],
        json!([
            {"variant": "blue", "wins": 0, "losses": 1, "ties": 1},
            {"variant": "green", "wins": 1, "losses": 0, "ties": 1},
        ]),
        "{report}"
    );
    let markdown = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(markdown.contains("| `green` | 1 | 0 | 1 |"), "{markdown}");
}
