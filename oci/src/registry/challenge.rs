//! `WWW-Authenticate` challenge parsing (being written).
