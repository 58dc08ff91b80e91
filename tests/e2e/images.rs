//! The images `scripts/build-images.sh` builds are what `docker/agent.Dockerfile` and
//! `docker/operator.Dockerfile` say. The builder interprets the runtime stage of each
//! Dockerfile and refuses what it does not understand, so these tests hold both ends: every
//! instruction of the two Dockerfiles is accepted (and anything else refused, naming file and
//! line), and, when the images have been built (`LLAMAFLEET_IMAGES_DIR` names the builder's
//! output directory), each archive's config is the Dockerfile's USER, ENTRYPOINT, CMD and
//! EXPOSE, read here from the Dockerfile text itself, and its name is the one the chart uses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use llamafleet_e2e::repo_root;
use serde_json::{Value, json};

/// The images built from this repository's Dockerfiles.
const IMAGES: [&str; 2] = ["agent", "operator"];

fn build_images(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo_root().join("scripts/build-images.sh"))
        .args(args)
        .output()
        .expect("bash runs")
}

fn dockerfile(image: &str) -> PathBuf {
    repo_root().join(format!("docker/{image}.Dockerfile"))
}

/// `--check --json` of the given Dockerfiles: their plans, or the builder's refusal.
fn plans(files: &[&Path]) -> Result<Vec<Value>, String> {
    let mut args = vec!["--check", "--json"];
    args.extend(files.iter().map(|f| f.to_str().expect("utf-8 path")));
    let out = build_images(&args);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("the plans are JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_dockerfiles_are_all_understood_and_run_non_root() {
    let files: Vec<PathBuf> = IMAGES.iter().map(|i| dockerfile(i)).collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let plans = plans(&refs).unwrap_or_else(|e| panic!("the builder refused a Dockerfile:\n{e}"));
    for (image, plan) in IMAGES.iter().zip(&plans) {
        assert_eq!(plan["config"]["User"], "65532:65532", "{image}: {plan:#}");
        let steps = plan["steps"].as_array().unwrap();
        // The binary is the one the build stage's `cargo build -p` line names.
        let copies: Vec<&Value> = steps.iter().filter(|s| s["op"] == "copy").collect();
        let package = format!("llamafleet-{image}");
        let binary = format!("/usr/local/bin/{package}");
        assert_eq!(copies.len(), 1, "{image}: {plan:#}");
        assert_eq!(copies[0]["source"]["package"], package.as_str());
        assert_eq!(copies[0]["dest"], binary.as_str());
        // The cargo profile is the Dockerfile's too (the operator's own, smaller in memory).
        let cargo_profile = match *image {
            "operator" => "operator-release",
            _ => "release",
        };
        assert_eq!(copies[0]["source"]["profile"], cargo_profile, "{image}");
        // The smoke step runs the binary in the image, as a RUN that the builder executes.
        let smoke = json!([binary, "--version"]);
        assert!(
            steps.iter().any(|s| s["op"] == "run" && s["argv"] == smoke),
            "{image}: no smoke step in {plan:#}"
        );
    }
    // The human-readable plan is there for people running --check.
    let out = build_images(&["--check"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("docker/agent.Dockerfile") && text.contains("docker/operator.Dockerfile")
    );
}

/// The Vulkan image (AMD and Intel GPUs) is built by the same builder (CI's GPU step,
/// scripts/gpu-checks.sh, builds it): its Dockerfile is understood, runs non-root, and copies
/// the agent built with the `vulkan` feature, which the builder compiles as the Dockerfile says.
#[test]
fn the_vulkan_dockerfile_is_understood_and_copies_the_vulkan_build() {
    let file = dockerfile("agent-vulkan");
    let plans = plans(&[file.as_path()])
        .unwrap_or_else(|e| panic!("the builder refused the Vulkan Dockerfile:\n{e}"));
    let plan = &plans[0];
    assert_eq!(plan["base"]["from"], "debian:trixie-slim", "{plan:#}");
    assert_eq!(plan["config"]["User"], "65532:65532", "{plan:#}");
    let steps = plan["steps"].as_array().unwrap();
    let copies: Vec<&Value> = steps.iter().filter(|s| s["op"] == "copy").collect();
    assert_eq!(copies.len(), 1, "{plan:#}");
    assert_eq!(copies[0]["source"]["package"], "llamafleet-agent");
    assert_eq!(copies[0]["source"]["features"], json!(["vulkan"]));
    let smoke = json!(["/usr/local/bin/llamafleet-agent", "--version"]);
    assert!(
        steps.iter().any(|s| s["op"] == "run" && s["argv"] == smoke),
        "no smoke step in {plan:#}"
    );
}

#[test]
fn anything_else_is_refused_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("ADD https://example.com/x /x", "ADD"),
        ("HEALTHCHECK CMD true", "HEALTHCHECK"),
        ("RUN --mount=type=cache,target=/x true", "--mount"),
        ("SHELL [\"/bin/bash\", \"-c\"]", "SHELL"),
        ("COPY --from=alpine /bin/busybox /bin/", "--from"),
        ("FETCH something", "FETCH"),
    ];
    for (line, named) in cases {
        let file = dir.path().join("Dockerfile");
        std::fs::write(
            &file,
            format!("# a comment\nFROM debian:bookworm-slim\n{line}\n"),
        )
        .unwrap();
        let refusal = plans(&[&file]).expect_err(line);
        assert!(
            refusal.contains(&format!("{}:3", file.display())) && refusal.contains(named),
            "{line}: {refusal}"
        );
    }
    let file = dir.path().join("Dockerfile");
    std::fs::write(&file, "FROM alpine:3\nUSER 1\n").unwrap();
    assert!(
        plans(&[&file])
            .expect_err("alpine")
            .contains("no recipe for base image")
    );
}

/// The runtime stage's last `KEYWORD ...` line of the Dockerfile text, without the keyword.
fn last(text: &str, keyword: &str) -> Option<String> {
    let runtime = &text[text.rfind("\nFROM ").expect("a FROM line")..];
    runtime
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{keyword} ")))
        .next_back()
        .map(str::to_owned)
}

/// A file of an OCI archive, read with tar.
fn archive_file(archive: &Path, name: &str) -> Value {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()
        .expect("tar runs");
    assert!(out.status.success(), "{name} of {}", archive.display());
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The name `ctr images import` gives the archive's one image, and the image's config.
fn image(archive: &Path) -> (String, Value) {
    let index = archive_file(archive, "index.json");
    let manifest = &index["manifests"][0];
    let name = manifest["annotations"]["io.containerd.image.name"]
        .as_str()
        .expect("a full name")
        .to_owned();
    let blob = |d: &Value| format!("blobs/sha256/{}", &d.as_str().unwrap()["sha256:".len()..]);
    let manifest = archive_file(archive, &blob(&manifest["digest"]));
    let config = archive_file(archive, &blob(&manifest["config"]["digest"]));
    (name, config["config"].clone())
}

#[test]
fn built_images_have_the_dockerfiles_config() {
    let Some(dir) = std::env::var_os("LLAMAFLEET_IMAGES_DIR") else {
        eprintln!(
            "skipped: LLAMAFLEET_IMAGES_DIR is not set (bash scripts/build-images.sh DIR builds them)"
        );
        return;
    };
    let dir = PathBuf::from(dir);
    let chart = std::fs::read_to_string(repo_root().join("charts/llamafleet/Chart.yaml")).unwrap();
    let chart: Value = serde_norway::from_str(&chart).unwrap();
    for image_name in IMAGES {
        let text = std::fs::read_to_string(dockerfile(image_name)).unwrap();
        let (name, config) = image(&dir.join(format!("{image_name}.tar")));
        let version = chart["appVersion"].as_str().unwrap();
        assert_eq!(name, format!("ghcr.io/llamafleet/{image_name}:{version}"));
        assert_eq!(config["User"], last(&text, "USER").unwrap(), "{image_name}");
        let entrypoint: Value = serde_json::from_str(&last(&text, "ENTRYPOINT").unwrap()).unwrap();
        assert_eq!(config["Entrypoint"], entrypoint, "{image_name}");
        let cmd = last(&text, "CMD").map(|c| serde_json::from_str::<Value>(&c).unwrap());
        assert_eq!(config.get("Cmd").cloned(), cmd, "{image_name}");
        let port = format!("{}/tcp", last(&text, "EXPOSE").unwrap());
        assert_eq!(config["ExposedPorts"], json!({ port: {} }), "{image_name}");
    }
    // The test cluster's pod sandbox: Kubernetes' pause, as its Dockerfile says, non-root.
    let (name, config) = image(&dir.join("pause.tar"));
    assert!(name.starts_with("registry.k8s.io/pause:"), "{name}");
    assert_eq!(config["User"], "65535:65535");
    assert_eq!(config["Entrypoint"], json!(["/pause"]));
}
