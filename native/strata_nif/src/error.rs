//! Raising `ArgumentError` with a message that names the offending argument.

use rustler::{Decoder, Error, NifException, Term};

#[derive(NifException)]
#[module = "ArgumentError"]
struct ArgumentError {
    message: String,
}

/// An error that raises `ArgumentError` with `message`.
pub fn bad_arg(message: impl Into<String>) -> Error {
    Error::RaiseTerm(Box::new(ArgumentError {
        message: message.into(),
    }))
}

/// Decodes argument `name`, or raises `ArgumentError` saying it should be `expected`.
pub fn arg<'a, T: Decoder<'a>>(term: Term<'a>, name: &str, expected: &str) -> Result<T, Error> {
    term.decode()
        .map_err(|_| bad_arg(format!("argument {name}: expected {expected}")))
}
