use quarry_storage::StorageError;

/// Failures of data-type operations. The command layer maps each to its Redis reply in one
/// place (`quarry_commands::error`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypeError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("value is not an integer or out of range")]
    NotInteger,
    #[error("value is not a valid float")]
    NotFloat,
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
    #[error("string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooBig,
    #[error("no such key")]
    NoSuchKey,
    #[error("index out of range")]
    IndexOutOfRange,
    /// GET of a bitmap larger than `max-bitmap-to-string-mb`.
    #[error("Operation aborted: The size of the bitmap string exceeds the configuration item max-bitmap-to-string-mb")]
    BitmapTooBig,
    /// A transaction or script could not lock a key it had not declared, because another one
    /// held it: nothing of it was committed.
    #[error("LOCKED a key the transaction did not declare was held by another transaction; nothing was committed (declare the keys a script uses in KEYS)")]
    LockTimeout,
    #[error(transparent)]
    Storage(#[from] StorageError),
}
