//! Headless Chromium driven over W3C WebDriver (chromedriver; plain WebDriver JSON over HTTP),
//! for the console pages' tests, and the skip-or-fail rule for the two tools.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::serve_support::process::{free_port, tool_available};

/// Whether chromedriver and Chromium are installed (a skip outside CI, a failure under it).
pub fn chromium_available() -> bool {
    tool_available(
        Command::new("chromedriver").arg("--version"),
        "chromedriver",
        "bash scripts/setup.sh test",
    ) && tool_available(
        Command::new("chromium").arg("--version"),
        "chromium",
        "bash scripts/setup.sh test",
    )
}

/// Where the tests keep their screenshots (test artefacts, not committed).
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// The W3C WebDriver key under which an element reference is returned.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session on it.
pub struct Browser {
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
    pub async fn start() -> Browser {
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
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Value {
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

    pub async fn element(&self, css: &str) -> String {
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

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    pub async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Opens `url` in the session.
    pub async fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Replaces the value of an input or textarea and fires `change`, as a user would.
    pub async fn set_value(&self, css: &str, value: &str) {
        let script = "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'));";
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": [css, value]}),
        )
        .await;
    }

    /// Polls `script` (a function body) until it returns something other than null or false.
    pub async fn wait_for(&self, what: &str, limit: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.script(script).await;
            if !value.is_null() && value != false {
                return value;
            }
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Resizes the window and saves a PNG of the page as it is now.
    pub async fn screenshot(&self, name: &str, width: u32, height: u32) -> PathBuf {
        self.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot base64"))
            .expect("screenshot bytes");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write screenshot");
        path
    }
}
