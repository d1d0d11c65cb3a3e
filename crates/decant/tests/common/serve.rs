//! A `decant serve` process on a free port of 127.0.0.1 and a real HTTP client for it, shared by
//! the service tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Workdir;

pub struct Service {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
    /// How long `wait_for` polls before it fails the test.
    pub patience: Duration,
}

impl Service {
    /// Starts `decant serve --listen 127.0.0.1:0 --log info ARGS` in `w` and waits until it
    /// listens.
    pub fn spawn(w: &Workdir, args: &[&str]) -> Service {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--log", "info"];
        all.extend_from_slice(args);
        let mut child = w
            .command(&all)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn decant serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("decant serve ended before it listened")
                .unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the log so that the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        // reqwest's rustls backend needs the process's crypto provider, even for http://.
        decant_connectors::tls::install_crypto_provider();
        Service {
            child,
            base,
            http: reqwest::Client::new(),
            patience: Duration::from_secs(120),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn initialize(&self, plan: Value) -> String {
        let (code, body) = self.post("/migration/initialize", plan).await;
        assert_eq!(code, 201, "initialize: {body}");
        body["job_id"].as_str().unwrap().to_string()
    }

    pub async fn status(&self, job: &str) -> Value {
        let (code, body) = self.get(&format!("/migration/status?job={job}")).await;
        assert_eq!(code, 200, "status: {body}");
        body
    }

    /// Polls the status until `done` holds, for at most `patience`; a failed job fails the test
    /// unless `what` is "failed".
    pub async fn wait_for(&self, job: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + self.patience;
        loop {
            let s = self.status(job).await;
            if done(&s) {
                return s;
            }
            assert!(
                s["state"] != "failed" || what == "failed",
                "job {job} failed while waiting for {what}: {s}"
            );
            assert!(
                Instant::now() < deadline,
                "{what}: not reached in time: {s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_state(&self, job: &str, state: &str) -> Value {
        self.wait_for(job, state, |s| s["state"] == state).await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
