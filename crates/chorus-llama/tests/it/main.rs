//! Integration tests of `chorus-llama` through its public API: real chat templates rendered
//! byte for byte as Python jinja2 does (`templates`), and embeddings through llama.cpp from
//! the testkit's tiny model (`embeddings`), and generation as llama-server's native API needs it
//! (`generation`).

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error, which is what it should do

mod embeddings;
mod generation;
mod templates;
