//! Integration tests of chorus-testkit against the real llama.cpp: the written models load,
//! tokenize, carry their chat template and generate; quantized models load too.

mod llama;
mod quantize;
mod support;
mod writer;
