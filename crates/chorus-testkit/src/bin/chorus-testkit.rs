//! `chorus-testkit write --tiny|--scripted|--bench [--q4_0] [--threads N] PATH`: writes a test or
//! benchmark model for scripts (the benchmark harness) to `PATH`.
//! `chorus-testkit mcp-server`: a small MCP server on stdin/stdout, for the tests of chorus as
//! an MCP client (see `chorus_testkit::mcp_server`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chorus_testkit::{ModelSpec, QuantType, TestkitError, quantize, write_model};
use clap::{Args, Parser, Subcommand};

/// Writes chorus's deterministic random-weight GGUF models.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a model to PATH (GGUF, architecture llama).
    Write(WriteArgs),
    /// Serve MCP on stdin/stdout: tools `lookup` (read-only) and `crash` (exits at once).
    McpServer,
}

#[derive(Args)]
struct WriteArgs {
    /// The tiny test model (F32, under 1 MB).
    #[arg(long, conflicts_with_all = ["bench", "scripted"], required_unless_present_any = ["bench", "scripted"])]
    tiny: bool,
    /// The scripted bigram model of agent-loop tests (F32, ~2 MB; see `ModelSpec::scripted`).
    #[arg(long, conflicts_with = "bench")]
    scripted: bool,
    /// The ~400M-parameter benchmark model (F16, ~0.8 GB).
    #[arg(long)]
    bench: bool,
    /// Quantize to Q4_0 with llama.cpp's quantizer (the unquantized file is not kept).
    #[arg(long = "q4_0")]
    q4_0: bool,
    /// Quantization threads (0: all hardware threads).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Where to write the model.
    path: PathBuf,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Write(args) => write(&args).map_err(|e| e.to_string()),
        Command::McpServer => chorus_testkit::mcp_server::serve_stdio(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-testkit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(args: &WriteArgs) -> Result<(), TestkitError> {
    let spec = if args.bench {
        ModelSpec::bench()
    } else if args.scripted {
        ModelSpec::scripted()
    } else {
        ModelSpec::tiny()
    };
    if args.q4_0 {
        let mut name = args.path.as_os_str().to_owned();
        name.push(".unquantized.tmp");
        let unquantized = PathBuf::from(name);
        write_model(&spec, &unquantized)?;
        let result = quantize(&unquantized, &args.path, QuantType::Q4_0, args.threads);
        let _ = std::fs::remove_file(&unquantized);
        result?;
    } else {
        write_model(&spec, &args.path)?;
    }
    report(&spec, &args.path)
}

fn report(spec: &ModelSpec, path: &Path) -> Result<(), TestkitError> {
    let size = std::fs::metadata(path).map_err(|source| TestkitError::Io { path: path.to_path_buf(), source })?.len();
    println!("wrote {}: {} parameters, {} bytes", path.display(), spec.parameter_count(), size);
    Ok(())
}
