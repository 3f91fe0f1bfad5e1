//! Sizing the KV cache when `--ctx-size` is 0 (the default): as llama-server's
//! `-c 0` it takes the model's training context, and it makes sure each slot
//! can hold a conversation, as long as the machine's free memory allows
//! (llama-server's `--fit` and Ollama's memory estimate do the same).
//!
//! The rule, all in tokens: `want = max(n_ctx_train, n_parallel × min(8192,
//! n_ctx_train))`, so every one of the `n_parallel` slots holds at least
//! 8,192 tokens (or the whole training context when that is smaller); then
//! `n_ctx = min(want, what fits)`, where what fits is the free memory less
//! the model file and a reserve for the OS and llama.cpp's compute buffers,
//! divided by the KV bytes per token. Rounded down to llama.cpp's 256-cell
//! blocks.

/// Tokens each slot should hold at least, unless the model was trained on fewer.
pub(crate) const SLOT_TOKENS: u32 = 8192;
/// Memory kept free for the OS, other programs and llama.cpp's compute buffers.
const RESERVE_BYTES: u64 = 1 << 30;
/// llama.cpp allocates KV cells in blocks of this many.
const CELLS: u32 = 256;

/// What the model needs per token of KV cache and what the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FitInput {
    /// The model's training context, in tokens.
    pub(crate) n_ctx_train: u32,
    /// Slots.
    pub(crate) n_parallel: u32,
    /// KV cache bytes per token (all layers, K and V).
    pub(crate) kv_bytes_per_token: u64,
    /// The model file's size, in bytes (its pages are resident once it runs).
    pub(crate) model_bytes: u64,
    /// Memory free for use now, in bytes.
    pub(crate) available_bytes: u64,
}

/// The chosen context and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fit {
    /// Tokens of KV cache, all slots together.
    pub(crate) n_ctx: u32,
    /// For the log and `/health`.
    pub(crate) reason: String,
}

/// The context size for `--ctx-size 0` (see the module docs).
pub(crate) fn fit(input: FitInput) -> Fit {
    let n_parallel = input.n_parallel.max(1);
    let n_ctx_train = input.n_ctx_train.max(CELLS);
    let per_slot = SLOT_TOKENS.min(n_ctx_train);
    let want = n_ctx_train.max(per_slot.saturating_mul(n_parallel));
    let budget = input.available_bytes.saturating_sub(input.model_bytes).saturating_sub(RESERVE_BYTES);
    let fits = budget / input.kv_bytes_per_token.max(1);
    let floor = CELLS * n_parallel;
    let mib = |b: u64| b / (1 << 20);
    let (n_ctx, why) = if u64::from(want) <= fits {
        let why = if want == n_ctx_train {
            "the model's training context".to_owned()
        } else {
            format!("{n_parallel} slots of {per_slot} tokens")
        };
        (want, why)
    } else {
        let n = u32::try_from(fits).unwrap_or(u32::MAX).max(floor);
        (n, format!("what fits in memory (wanted {want} tokens)"))
    };
    let n_ctx = (n_ctx / CELLS * CELLS).max(floor);
    let kv = mib(u64::from(n_ctx) * input.kv_bytes_per_token);
    Fit {
        n_ctx,
        reason: format!(
            "{why}: {kv} MiB of KV cache, {} MiB free after the model",
            mib(input.available_bytes.saturating_sub(input.model_bytes))
        ),
    }
}

/// The most `--cache-ram` takes by default: llama-server's 8 GiB.
const CACHE_RAM_MAX: u64 = 8 << 30;
/// The most `--cache-disk` takes by default.
const CACHE_DISK_MAX: u64 = 16 << 30;

/// `--cache-ram` when not given: half the memory free once the model and its KV cache are
/// loaded (`available_bytes`, measured then), at most 8 GiB.
pub(crate) fn cache_ram(available_bytes: u64) -> u64 {
    (available_bytes / 2).min(CACHE_RAM_MAX)
}

/// `--cache-disk` when not given: a tenth of the free space of the disk holding `dir`, at
/// most 16 GiB; 0 when that cannot be told.
pub(crate) fn cache_disk(dir: &std::path::Path) -> u64 {
    let Ok(dir) = std::fs::canonicalize(dir) else { return 0 };
    let disks = sysinfo::Disks::new_with_refreshed_list();
    let free = disks
        .list()
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map_or(0, sysinfo::Disk::available_space);
    (free / 10).min(CACHE_DISK_MAX)
}

/// Memory free for use now, in bytes: the system's available memory, within
/// the cgroup's limit when there is one.
pub(crate) fn available_memory() -> u64 {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let available = system.available_memory();
    match system.cgroup_limits() {
        Some(limits) => available.min(limits.free_memory),
        None => available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    /// Qwen2.5-0.5B: 24 layers, 2 KV heads of 64, F16 K and V.
    const QWEN_KV: u64 = 24 * 2 * 2 * 64 * 2;

    fn input(n_ctx_train: u32, available: u64) -> FitInput {
        FitInput {
            n_ctx_train,
            n_parallel: 4,
            kv_bytes_per_token: QWEN_KV,
            model_bytes: 491_400_064,
            available_bytes: available,
        }
    }

    #[test]
    fn the_cache_defaults_take_a_share_of_what_is_free_up_to_a_cap() {
        assert_eq!(cache_ram(4 * GIB), 2 * GIB);
        assert_eq!(cache_ram(100 * GIB), 8 * GIB);
        let dir = tempfile::tempdir().unwrap();
        let disk = cache_disk(dir.path());
        assert!(disk > 0 && disk <= 16 * GIB, "{disk}");
        assert_eq!(cache_disk(std::path::Path::new("/no/such/dir")), 0);
    }

    #[test]
    fn a_roomy_machine_gets_the_training_context() {
        let f = fit(input(32768, 20 * GIB));
        assert_eq!(f.n_ctx, 32768, "{}", f.reason);
        assert!(f.reason.starts_with("the model's training context"), "{}", f.reason);
    }

    #[test]
    fn a_short_training_context_still_gives_every_slot_8192_tokens() {
        let f = fit(input(8192, 20 * GIB));
        assert_eq!(f.n_ctx, 4 * 8192, "{}", f.reason);
        // Trained on fewer than 8192: each slot gets the training context.
        assert_eq!(fit(input(2048, 20 * GIB)).n_ctx, 4 * 2048);
    }

    #[test]
    fn little_memory_shrinks_the_context_to_what_fits() {
        // 1 GiB reserve + the model, then room for 10,000 tokens.
        let available = GIB + 491_400_064 + 10_000 * QWEN_KV;
        let f = fit(input(32768, available));
        assert_eq!(f.n_ctx, 9984, "{}", f.reason);
        assert!(f.reason.contains("fits in memory"), "{}", f.reason);
        // Never below one block per slot.
        assert_eq!(fit(input(32768, 0)).n_ctx, 4 * 256);
    }
}
