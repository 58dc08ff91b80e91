//! Errors of each reconcile step, wrapped by [`Error`]; each maps to a short metric label.
//!
//! User errors (an invalid spec, a missing model) are not here: the plan step returns
//! [`crate::deployment::plan::ValidateError`], which the reconcile turns into a condition, an
//! Event and `await_change`. Everything here is transient and retried with backoff, unless
//! [`Error::is_permanent`] says otherwise.

/// Reading the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    /// The watch caches stopped before their first listing (the operator is shutting down).
    #[error(transparent)]
    CachesStopped(#[from] crate::stores::StoresStopped),
    /// Listing objects of one kind failed (the router pods of a rollout).
    #[error("listing {kind} objects: {source}")]
    List {
        /// The kind.
        kind: &'static str,
        /// The cause.
        source: kube::Error,
    },
}

/// Writing the children failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A server-side apply was refused.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        /// The kind.
        kind: &'static str,
        /// The object.
        name: String,
        /// The cause.
        source: kube::Error,
    },
    /// Deleting an object of a removed variant failed.
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        /// The kind.
        kind: &'static str,
        /// The object.
        name: String,
        /// The cause.
        source: kube::Error,
    },
}

/// Reading or creating the node cache's volume and claim failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeCacheError {
    /// Reading the claim or the volume failed (a 404 is not an error: it is created).
    #[error("reading {kind} {name}: {source}")]
    Read {
        /// The kind.
        kind: &'static str,
        /// The object.
        name: String,
        /// The cause.
        source: kube::Error,
    },
    /// Creating the claim or the volume, or freeing a released volume, was refused.
    #[error("writing {kind} {name}: {source}")]
    Write {
        /// The kind.
        kind: &'static str,
        /// The object.
        name: String,
        /// The cause.
        source: kube::Error,
    },
}

/// Writing the status failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The status apply was refused.
    #[error("applying status: {0}")]
    Patch(#[source] kube::Error),
}

/// Any failure of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Dereference step.
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    /// Node-cache step.
    #[error(transparent)]
    NodeCache(#[from] NodeCacheError),
    /// Apply step.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Status step.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The object lacks a field the API server always sets (name, namespace, uid).
    #[error("object has no metadata.{0}")]
    MissingMetadata(&'static str),
}

impl Error {
    /// Short label for the `errors` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Dereference(DereferenceError::CachesStopped(_)) => "caches_stopped",
            Self::Dereference(DereferenceError::List { .. }) => "list",
            Self::NodeCache(_) => "node_cache",
            Self::Apply(ApplyError::Apply { .. }) => "apply",
            Self::Apply(ApplyError::Delete { .. }) => "delete",
            Self::Status(_) => "status",
            Self::MissingMetadata(_) => "missing_metadata",
        }
    }

    /// Retrying cannot help; wait for the object to change.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::MissingMetadata(_))
    }
}
