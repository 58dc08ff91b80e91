//! The chat page at `GET /` answers a question in headless Chromium: a real `serve`, real
//! Chromium driven over WebDriver (chromedriver, plain W3C WebDriver JSON over HTTP), the
//! page's own JavaScript streaming `/v1/chat/completions`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::process::{KEY, free_port, spawn_server, tool_available};

/// The W3C WebDriver key under which an element reference is returned.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session on it.
struct Browser {
    driver: Child,
    port: u16,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID` once the session exists.
    session: String,
}

impl Drop for Browser {
    /// Ends the session (which closes Chromium; killing chromedriver alone would orphan it),
    /// then chromedriver. Blocking, by hand, because `Drop` cannot await.
    fn drop(&mut self) {
        if let Some((_, path)) = self.session.split_once(&format!(":{}", self.port))
            && let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", self.port))
        {
            let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
            let request =
                format!("DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let _ = socket.write_all(request.as_bytes());
            let _ = socket.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let mut browser = Browser {
            driver,
            port,
            http: reqwest::Client::new(),
            session: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while browser
            .http
            .get(format!("{}/status", browser.session))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = browser
            .call(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]}
                }}}),
            )
            .await;
        let id = created["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        browser.session = format!("{}/session/{id}", browser.session);
        browser
    }

    /// One WebDriver command; panics with the driver's error on failure.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.http.get(url),
            _ => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        };
        let response = request.send().await.expect("webdriver request");
        let status = response.status();
        let value: Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("webdriver json");
        assert!(status.is_success(), "webdriver {method} {path}: {value}");
        value["value"].clone()
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_streams_an_answer_in_headless_chromium() {
    if !tool_available(
        Command::new("chromedriver").arg("--version"),
        "chromedriver",
        "bash scripts/setup.sh test",
    ) || !tool_available(
        Command::new("chromium").arg("--version"),
        "chromium",
        "bash scripts/setup.sh test",
    ) {
        return;
    }
    let Some(server) = spawn_server(Some(KEY), &[]).await else {
        return;
    };
    let browser = Browser::start().await;
    browser
        .call("POST", "/url", json!({"url": format!("{}/", server.base)}))
        .await;
    assert_eq!(
        browser.call("GET", "/title", Value::Null).await,
        "llamafleet chat"
    );
    // The server requires a key, so this also proves the page sends the one typed in.
    browser.type_into("#key", KEY).await;
    browser
        .type_into("#q", "What is the capital of France?")
        .await;
    let send = browser.element("#send").await;
    browser
        .call("POST", &format!("/element/{send}/click"), json!({}))
        .await;

    let started = Instant::now();
    let answer = loop {
        let state = browser
            .script(
                "const a = document.querySelector('#log .assistant');
                 return a ? [a.textContent, a.dataset.done === 'true'] : null;",
            )
            .await;
        let text = state[0].as_str().unwrap_or_default();
        // The page writes "error: ..." and stops when the request fails.
        if state[1] == true || text.starts_with("error:") {
            break text.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no finished answer in 2 minutes: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!answer.starts_with("error:"), "{answer}");
    assert!(!answer.trim().is_empty(), "empty answer");
    let question = browser
        .script("return document.querySelector('#log .user').textContent;")
        .await;
    assert_eq!(question, "What is the capital of France?");
}
