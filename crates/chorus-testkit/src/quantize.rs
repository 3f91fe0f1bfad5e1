//! Quantization of GGUF files with llama.cpp's own quantizer (`llama_model_quantize` from
//! `llama-cpp-sys-2`; the safe `llama-cpp-2` API does not expose it). The only unsafe code of
//! this crate lives here.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::path::Path;

use crate::TestkitError;

/// Target type of [`quantize()`], a `llama_ftype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// `LLAMA_FTYPE_MOSTLY_Q4_0`: 4-bit blocks of 32 weights with an F16 scale; 1-D tensors stay
    /// F32, and llama.cpp's rules pick other types for a few tensors (`output.weight` gets
    /// Q6_K, or a compatible fallback when its rows are not a multiple of 256).
    Q4_0,
}

impl QuantType {
    fn llama_ftype(self) -> llama_cpp_sys_2::llama_ftype {
        match self {
            Self::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
        }
    }
}

/// Quantizes the GGUF model at `input` into a new GGUF file at `output` with
/// `llama_model_quantize`, starting from `llama_model_quantize_default_params()` with the
/// given type and `n_threads` worker threads (0 lets llama.cpp use every hardware thread).
///
/// llama.cpp logs its progress through its log callback (stderr unless the process installed
/// another). `output` is overwritten if it exists.
///
/// # Errors
/// [`TestkitError::UnsupportedPath`] for a path that is not UTF-8 or contains a NUL byte,
/// [`TestkitError::Io`] when `input` does not exist, [`TestkitError::Quantize`] when llama.cpp
/// fails (unreadable model, unwritable output; the reason is in llama.cpp's log).
pub fn quantize(input: &Path, output: &Path, ftype: QuantType, n_threads: u32) -> Result<(), TestkitError> {
    std::fs::metadata(input).map_err(|e| TestkitError::io(input, e))?;
    let input_c = path_to_cstring(input)?;
    let output_c = path_to_cstring(output)?;

    // SAFETY: `llama_model_quantize_default_params` takes no arguments and returns a plain
    // struct by value; it reads no global state.
    let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
    params.nthread = i32::try_from(n_threads).unwrap_or(i32::MAX);
    params.ftype = ftype.llama_ftype();

    // SAFETY: both paths are valid NUL-terminated C strings that outlive the call; `params` is
    // a fully initialized struct from llama.cpp's own defaults whose pointer fields (imatrix,
    // kv_overrides, tensor types, prune_layers) are null, which llama.cpp treats as absent; it
    // is borrowed for the duration of the call only. The function catches its C++ exceptions
    // and reports failure through its return value, so no unwinding crosses the FFI boundary.
    // It touches no state shared with a loaded model or context.
    let status = unsafe { llama_cpp_sys_2::llama_model_quantize(input_c.as_ptr(), output_c.as_ptr(), &params) };
    if status == 0 { Ok(()) } else { Err(TestkitError::Quantize { input: input.to_path_buf(), status }) }
}

/// llama.cpp opens files by `const char *` path: UTF-8 without interior NUL.
fn path_to_cstring(path: &Path) -> Result<CString, TestkitError> {
    path.to_str().and_then(|s| CString::new(s).ok()).ok_or_else(|| TestkitError::UnsupportedPath(path.to_path_buf()))
}
