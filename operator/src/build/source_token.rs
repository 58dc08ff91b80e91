//! The bearer token of a private model source (`LlmModel.spec.source.authSecretRef`) in the
//! serving pods. The operator reads the Secret to resolve the source; the agents download the
//! file themselves, so they need it too: the key is mounted as a file (a Secret volume, which
//! Pod Security `restricted` admits) and passed as `--token-file`. The token never appears in
//! the pod spec, and the agent sends it only to the source's origin.

use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use crate::deployment::plan::ResolvedModel;

/// Name of the token volume in variant pods.
pub const TOKEN_VOLUME: &str = "model-source-token";
/// Where the token volume is mounted.
pub const TOKEN_DIR: &str = "/var/run/llamafleet/model-source";
/// File name of the token inside [`TOKEN_DIR`].
const TOKEN_FILE: &str = "token";
/// Key of the Secret when `authSecretRef.key` is absent (the CRD's documented default).
const DEFAULT_KEY: &str = "token";
/// Owner- and group-readable: the pod's `fsGroup` (the agents' group) owns Secret files.
const TOKEN_MODE: i32 = 0o440;

/// Agent arguments for the model's token; none for a public source.
pub fn serve_args(model: &ResolvedModel) -> Vec<String> {
    match model.auth_secret {
        Some(_) => vec!["--token-file".into(), format!("{TOKEN_DIR}/{TOKEN_FILE}")],
        None => Vec::new(),
    }
}

/// The Secret volume and its read-only mount; `None` for a public source.
pub fn volume(model: &ResolvedModel) -> Option<(Volume, VolumeMount)> {
    let secret = model.auth_secret.as_ref()?;
    let volume = Volume {
        name: TOKEN_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.name.clone()),
            items: Some(vec![KeyToPath {
                key: secret.key.clone().unwrap_or_else(|| DEFAULT_KEY.into()),
                path: TOKEN_FILE.into(),
                mode: None,
            }]),
            default_mode: Some(TOKEN_MODE),
            optional: None,
        }),
        ..Volume::default()
    };
    let mount = VolumeMount {
        name: TOKEN_VOLUME.into(),
        mount_path: TOKEN_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    Some((volume, mount))
}
