//! Download progress: a bar (bytes, rate, ETA) on a terminal, steady log lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often progress is logged when stderr is not a terminal (pod logs): often enough to
/// see a stall, rarely enough not to flood.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Progress of one download.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Bar(ProgressBar),
    Log {
        label: String,
        total: Option<u64>,
        done: u64,
        start_offset: u64,
        started: Instant,
        last: Instant,
    },
    Hidden,
}

impl Progress {
    /// A bar on a terminal, log lines otherwise; `done` bytes are already there (resume).
    pub fn new(show: bool, label: &str, total: Option<u64>, done: u64) -> Self {
        let mode = if !show {
            Mode::Hidden
        } else if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_owned());
            bar.set_position(done);
            Mode::Bar(bar)
        } else {
            let now = Instant::now();
            Mode::Log {
                label: label.to_owned(),
                total,
                done,
                start_offset: done,
                started: now,
                last: now,
            }
        };
        Progress { mode }
    }

    /// Records `n` more bytes.
    pub fn advance(&mut self, n: u64) {
        match &mut self.mode {
            Mode::Bar(bar) => bar.inc(n),
            Mode::Log {
                label,
                total,
                done,
                start_offset,
                started,
                last,
            } => {
                *done += n;
                if last.elapsed() >= LOG_INTERVAL {
                    *last = Instant::now();
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    let rate = (*done - *start_offset) as f64 / secs;
                    let eta = total
                        .filter(|_| rate > 0.0)
                        .map(|t| (t.saturating_sub(*done) as f64 / rate).round() as u64);
                    tracing::info!(
                        target: "llamafleet::download",
                        source = %label,
                        bytes = *done,
                        total = ?total,
                        rate_bytes_per_sec = rate.round() as u64,
                        eta_secs = ?eta,
                        "downloading"
                    );
                }
            }
            Mode::Hidden => {}
        }
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}
