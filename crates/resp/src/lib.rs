//! RESP2/RESP3 wire format: the incremental request parser and the reply encoder.
//!
//! This crate owns bytes on the wire and nothing else: it knows no commands, no sockets and no
//! storage. The parser never panics on any input (a proptest checks this); a malformed request is
//! a [`ProtocolError`] whose text is what Redis sends before it closes the connection.

mod frame;
mod parser;

pub use frame::{format_double, Frame, Protocol};
pub use parser::{
    parse_request, parse_request_resumable, ParseLimits, ParseState, ProtocolError, Request,
};
