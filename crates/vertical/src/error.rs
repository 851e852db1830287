//! Errors of the vertical core: each names the object and the field at fault.

/// Why an object's settings, a checkpoint or a usage series could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A field of a `VerticalAutoscaler` (or its checkpoint) holds a value the core cannot use.
    #[error("{object}: {field}: {why}")]
    Invalid {
        object: String,
        field: String,
        why: String,
    },
    /// A line of a usage series could not be read.
    #[error("{file}:{line}: {why}")]
    Series {
        file: String,
        line: usize,
        why: String,
    },
}

impl Error {
    /// An invalid field of the object `object`.
    pub fn invalid(object: &str, field: &str, why: String) -> Error {
        Error::Invalid {
            object: object.to_string(),
            field: field.to_string(),
            why,
        }
    }
}
