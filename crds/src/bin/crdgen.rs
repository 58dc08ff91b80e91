//! Writes the CRD manifests, one file per CRD, to a directory (default: the `crds/` folder of
//! this crate, plus the Helm chart's `charts/llamafleet/crds/` copy and the configuration
//! reference `docs/configuration.md` beside it). `--check` compares instead of writing and
//! exits 1 on drift.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut check = false;
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--out" => match args.next() {
                Some(d) => dir = PathBuf::from(d),
                None => return fail("--out needs a directory"),
            },
            other => {
                return fail(&format!(
                    "unknown argument {other:?}; usage: crdgen [--check] [--out DIR]"
                ));
            }
        }
    }
    let files = match llamafleet_crds::crdgen::rendered() {
        Ok(f) => f,
        Err(e) => return fail(&format!("cannot render CRDs: {e}")),
    };
    let mut dirs = vec![dir.clone()];
    let chart = dir.join("../charts/llamafleet/crds");
    if out_is_default(&dir) && chart.is_dir() {
        dirs.push(chart);
    }
    let mut targets: Vec<(PathBuf, String)> = dirs
        .iter()
        .flat_map(|d| files.iter().map(move |f| (d.join(&f.0), f.1.clone())))
        .collect();
    if out_is_default(&dir) {
        targets.push((
            dir.join("..").join(llamafleet_crds::reference::PATH),
            llamafleet_crds::reference::markdown(),
        ));
    }
    let mut drift = false;
    for (path, yaml) in targets {
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                eprintln!("{} differs from the Rust types", path.display());
                drift = true;
            }
        } else if let Err(e) = std::fs::write(&path, yaml.as_bytes()) {
            return fail(&format!("cannot write {}: {e}", path.display()));
        } else {
            println!("{}", path.display());
        }
    }
    if drift {
        return fail("CRD drift: run `cargo run -p llamafleet-crds --bin crdgen`");
    }
    ExitCode::SUCCESS
}

/// Only the default output also refreshes the chart's copy; `--out` writes just where asked.
fn out_is_default(dir: &std::path::Path) -> bool {
    dir == std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("crdgen: {msg}");
    ExitCode::FAILURE
}
