//! The model thread: one OS thread owns the llama.cpp context and runs
//! continuous batching over its slots.
//!
//! Each step it (1) takes new jobs from the channel without waiting while any
//! sequence is active, (2) drops sequences whose client left, (3) places
//! queued jobs in free slots, preferring the slot whose cached tokens share the
//! longest prefix with the prompt, (4) builds one batch with the next token of
//! every generating sequence first and then prompt chunks up to `n_batch` (the
//! prompt's last token in a later step of its own), so a long prompt never
//! stalls the others for more than one step, (5) decodes, and (6) samples
//! every sequence that produced logits, streaming its text.
//!
//! Each slot's sequence holds at most `n_ctx_slot` tokens (`n_ctx / n_parallel`
//! cells of its own, or all `n_ctx` with a unified KV cache) and ends with
//! `length` at that size. A free slot keeps its tokens' cells as a prefix
//! cache until a new sequence reuses or cuts them, or (unified cache)
//! decoding needs room: then idle caches are evicted first and, if that is
//! not enough, the longest active sequence ends with `length`.
//!
//! Beyond the slots (see `cache` and `snapshot`): a slot's cells that a new
//! sequence would cut (or an eviction would drop) are first copied to the RAM
//! prompt cache; a new sequence restores the longest prefix of its prompt that
//! a free slot, the RAM cache or its key's disk snapshot holds, reading the
//! snapshot on the disk thread first so the model thread only copies it in;
//! and a keyed sequence's state is copied out for the disk thread when it
//! ends. After any restore the last prompt token is decoded again, so
//! sampling always has fresh logits. The other choices of a request (OpenAI's
//! `n`) are forks of its job: each waits in a free slot until the job's prompt
//! is decoded, then copies its cells and samples from the same logits. Between steps the thread also runs
//! llama-server's slot actions (save, restore, erase a slot's file).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use chorus_engine::metrics::{CacheLabels, CacheTier};
use chorus_engine::stream::GenerationSender;
use chorus_engine::text::{StopMatcher, StopOutcome, Utf8Decoder};
use chorus_engine::{
    BackendError, BackendStats, Detail, FinishReason, GenerationEvent, Metrics, SampledToken, SamplingParams,
    SlotAction, SlotActionResult, SlotStats, TokenLogprobs, TopLogprob, Usage,
};
use llama_cpp_2::DecodeError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use crate::cache::{PromptCache, common_prefix};
use crate::snapshot::{Command, DiskCache};

/// How many recent decode steps `/health` reports.
const RECENT_STEPS: usize = 32;

/// A slot about to lose at least this many cached tokens saves them to the RAM cache
/// first; fewer are cheaper to recompute than to copy (the tail of an answer that the
/// next turn's template writes differently).
const MIN_SAVE_TOKENS: usize = 64;

/// What the model thread takes from its channel.
pub(crate) enum Msg {
    /// A request to decode (new, or back from the disk thread with its snapshot).
    Job(Box<Job>),
    /// A llama-server slot action.
    Slot { id_slot: u32, action: SlotAction, reply: SlotReply },
    /// Forget the states kept under a `prompt_cache_key`.
    Forget(String),
    /// The backend is going away.
    Shutdown,
}

/// A state read for a job before it reached the model thread (its key's snapshot).
pub(crate) struct Restore {
    /// The tokens the state holds.
    pub(crate) tokens: Vec<LlamaToken>,
    /// llama.cpp's state bytes.
    pub(crate) state: Arc<Vec<u8>>,
    /// Where it came from.
    pub(crate) tier: CacheTier,
    /// Time spent before the model thread got it (reading and checking the file).
    pub(crate) read: std::time::Duration,
}

/// The prompt cache beyond the slots, as the model thread sees it.
pub(crate) struct Caches {
    /// Host RAM; a zero budget keeps nothing.
    pub(crate) ram: PromptCache,
    /// Disk snapshots, when `--cache-disk` and a data dir allow them.
    pub(crate) disk: Option<DiskCache>,
    /// llama-server's `--slot-save-path`.
    pub(crate) slot_save_path: Option<PathBuf>,
}

/// A tokenized request waiting for a slot.
pub(crate) struct Job {
    /// Prompt tokens.
    pub(crate) tokens: Vec<LlamaToken>,
    /// Sampling parameters.
    pub(crate) sampling: SamplingParams,
    /// The grammar that constrains the output, if any (first in the sampler chain).
    pub(crate) grammar: Option<LlamaSampler>,
    /// Stop sequences.
    pub(crate) stop: Vec<String>,
    /// Generation limit; `None` runs to the end of the context.
    pub(crate) max_tokens: Option<u32>,
    /// Where the text goes; closed when the client left.
    pub(crate) tx: GenerationSender,
    /// When the request was queued, for time-to-first-token.
    pub(crate) queued_at: Instant,
    /// OpenAI's `prompt_cache_key`: slot affinity and the disk snapshot's name.
    pub(crate) prompt_cache_key: Option<String>,
    /// llama-server's `cache_prompt`: false recomputes the whole prompt.
    pub(crate) cache_prompt: bool,
    /// Send each sampled token and the stop word as [`GenerationEvent::Detail`]s.
    pub(crate) return_tokens: bool,
    /// With each token, its log-probability and this many most likely alternatives.
    pub(crate) logprobs: Option<u32>,
    /// The key's snapshot, read by the disk thread.
    pub(crate) restore: Option<Restore>,
    /// Whether the disk thread has looked (so the job is not sent there twice).
    pub(crate) disk_checked: bool,
    /// The other choices of the same request (OpenAI's `n`), on the same prompt: each takes a
    /// free slot when this job starts, copies this job's KV cells once its prompt is
    /// decoded and samples its first token from the same logits; without a free slot it
    /// waits in the queue as a job of its own.
    pub(crate) forks: Vec<Job>,
    /// llama-server's `id_slot`: only this slot takes the job (the queue waits for it).
    pub(crate) id_slot: Option<u32>,
    /// Every prompt token's log-probability and this many alternatives (the prompt is then
    /// computed whole, with logits at every position).
    pub(crate) prompt_logprobs: Option<u32>,
}

/// Scheduler state shared with [`crate::LlamaBackend::stats`].
#[derive(Debug)]
pub(crate) struct SharedStats {
    slots_total: u32,
    slots_busy: u32,
    queued: u32,
    recent: VecDeque<u32>,
    max_sequences: u32,
    steps: u64,
    slots: Vec<SlotStats>,
}

impl SharedStats {
    pub(crate) fn new(slots_total: u32) -> Self {
        let slots = (0..slots_total).map(|id| SlotStats { id, ..SlotStats::default() }).collect();
        Self { slots_total, slots_busy: 0, queued: 0, recent: VecDeque::new(), max_sequences: 0, steps: 0, slots }
    }

    /// A decode step of `sequences` sequences run outside the generation worker (an embedding
    /// model's loop), with `queued` inputs still waiting.
    pub(crate) fn record_step(&mut self, sequences: u32, queued: u32) {
        self.steps += 1;
        self.queued = queued;
        self.max_sequences = self.max_sequences.max(sequences);
        if self.recent.len() == RECENT_STEPS {
            self.recent.pop_front();
        }
        self.recent.push_back(sequences);
    }

    pub(crate) fn snapshot(&self) -> BackendStats {
        BackendStats {
            slots_total: self.slots_total,
            slots_busy: self.slots_busy,
            queued: self.queued,
            last_steps_sequences: self.recent.iter().copied().collect(),
            max_sequences: self.max_sequences,
            steps: self.steps,
            cache: chorus_engine::CacheStats::default(),
            slots: self.slots.clone(),
        }
    }
}

/// One slot: a llama.cpp sequence id and what its KV cells hold.
struct Slot {
    seq: i32,
    /// Tokens whose KV cells this sequence holds, at positions `0..cache.len()`.
    cache: Vec<LlamaToken>,
    /// Step when the slot was last released, for least-recently-used choice.
    released_at: u64,
    /// The `prompt_cache_key` it served last.
    key: Option<String>,
    active: Option<Active>,
    /// Its cells were copied from another stream's (`llama_memory_seq_cp` across streams
    /// copies at the next decode): its state cannot be read out before then.
    copy_pending: bool,
}

/// A sequence being decoded in a slot.
struct Active {
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache (reused or decoded).
    prompt_done: usize,
    cached_tokens: u32,
    sampler: LlamaSampler,
    /// Sampled but not yet decoded: the next step feeds it.
    pending: Option<LlamaToken>,
    generated: u32,
    max_tokens: Option<u32>,
    ignore_eos: bool,
    return_tokens: bool,
    logprobs: Option<u32>,
    prompt_logprobs: Option<u32>,
    utf8: Utf8Decoder,
    stop: StopMatcher,
    tx: GenerationSender,
    queued_at: Instant,
    /// A fork waiting for this slot's prompt: it decodes nothing of its own until then.
    fork_of: Option<usize>,
    /// When the sequence took its slot.
    started_at: Instant,
    first_token_at: Option<Instant>,
    last_token_at: Option<Instant>,
}

impl Active {
    fn usage(&self) -> Usage {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let (prompt_ms, predicted_ms) = match (self.first_token_at, self.last_token_at) {
            (Some(first), Some(last)) => (ms(first - self.started_at), ms(last - first)),
            _ => (ms(self.started_at.elapsed()), 0.0),
        };
        Usage {
            prompt_tokens: self.prompt.len() as u32,
            completion_tokens: self.generated,
            cached_tokens: self.cached_tokens,
            prompt_ms,
            predicted_ms,
        }
    }
}

/// What one step put in the batch for one slot.
struct Planned {
    slot: usize,
    tokens: Vec<LlamaToken>,
    /// Batch index whose logits to sample, when the step ends with one.
    logits_at: Option<i32>,
    prefill: bool,
    /// Batch index of the first token when every token of this prompt chunk has logits
    /// (prompt log-probabilities).
    all_logits_from: Option<i32>,
}

struct Worker<'m, 'c> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'c>,
    slots: Vec<Slot>,
    queue: VecDeque<Job>,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    /// Tokens one sequence can hold.
    n_ctx_slot: usize,
    step: u64,
    stats: &'m Mutex<SharedStats>,
    metrics: &'m Metrics,
    caches: Caches,
    /// Slot actions waiting for their slot to be free.
    deferred: Vec<(u32, SlotAction, SlotReply)>,
}

type SlotReply = tokio::sync::oneshot::Sender<Result<SlotActionResult, BackendError>>;

/// Run the model thread until the backend sends [`Msg::Shutdown`] or the channel closes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    model: &LlamaModel,
    ctx: LlamaContext<'_>,
    n_parallel: u32,
    n_ctx_slot: u32,
    jobs: mpsc::Receiver<Msg>,
    stats: &Mutex<SharedStats>,
    metrics: &Metrics,
    caches: Caches,
) {
    let n_batch = ctx.n_batch() as usize;
    let mut worker = Worker {
        model,
        ctx,
        slots: (0..n_parallel as i32)
            .map(|seq| Slot { seq, cache: Vec::new(), released_at: 0, key: None, active: None, copy_pending: false })
            .collect(),
        queue: VecDeque::new(),
        batch: LlamaBatch::new(n_batch, n_parallel as i32),
        n_batch,
        n_ctx_slot: n_ctx_slot as usize,
        step: 0,
        stats,
        metrics,
        caches,
        deferred: Vec::new(),
    };
    loop {
        let busy = worker.slots.iter().any(|s| s.active.is_some());
        if !busy && worker.queue.is_empty() {
            // Idle: block until work arrives or the backend is dropped.
            match jobs.recv() {
                Ok(msg) => {
                    if !worker.take(msg) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(msg) => {
                    if !worker.take(msg) {
                        worker.fail_all();
                        return;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    worker.fail_all();
                    return;
                }
            }
        }
        let decoded = worker.step();
        worker.run_deferred();
        // Once per iteration, after sequences finished, so an idle thread never
        // leaves a stale busy count behind.
        worker.publish_stats(decoded);
    }
    worker.fail_all();
}

impl Worker<'_, '_> {
    /// Handle one message; false on shutdown.
    fn take(&mut self, msg: Msg) -> bool {
        match msg {
            // Back from the disk thread: it keeps its place at the head of the queue.
            Msg::Job(job) if job.disk_checked => self.queue.push_front(*job),
            Msg::Job(job) => self.queue.push_back(*job),
            Msg::Slot { id_slot, action, reply } => {
                // As llama-server does, an action on a busy slot waits until the slot is free.
                if self.slots.get(id_slot as usize).is_some_and(|s| s.active.is_some()) {
                    self.deferred.push((id_slot, action, reply));
                } else {
                    let _ = reply.send(self.slot_action(id_slot, action));
                }
            }
            Msg::Forget(key) => {
                for slot in self.slots.iter_mut().filter(|s| s.key.as_deref() == Some(&key)) {
                    slot.key = None;
                }
                if let Some(disk) = &self.caches.disk {
                    let _ = disk.tx.send(Command::Forget { key });
                }
            }
            Msg::Shutdown => return false,
        }
        true
    }

    /// llama-server's `POST /slots/{id}?action=…`, with llama.cpp's own slot files
    /// (`llama_state_seq_save_file`), so files move between chorus and a llama-server built on
    /// a llama.cpp of the same state format (`LLAMA_STATE_SEQ_VERSION`; another is refused).
    fn slot_action(&mut self, id_slot: u32, action: SlotAction) -> Result<SlotActionResult, BackendError> {
        let started = Instant::now();
        let i = id_slot as usize;
        let last = self.slots.len() as u32 - 1;
        let slot = self.slots.get(i).ok_or(BackendError::InvalidSlot { id_slot, last })?;
        if slot.active.is_some() {
            return Err(BackendError::SlotBusy(id_slot));
        }
        let seq = slot.seq;
        let n_vocab = self.model.n_vocab();
        let dir = self.caches.slot_save_path.clone().ok_or(BackendError::SlotActionsDisabled)?;
        let done = |filename: Option<String>, n_tokens: usize, n_bytes: usize| SlotActionResult {
            id_slot,
            filename,
            n_tokens,
            n_bytes,
            ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        match action {
            SlotAction::Save { filename } => {
                let tokens = self.slots[i].cache.clone();
                let n = self
                    .ctx
                    .state_seq_save_file(dir.join(&filename), seq, &tokens)
                    .map_err(|e| BackendError::SlotFile(format!("cannot save slot {id_slot} to `{filename}`: {e}")))?;
                Ok(done(Some(filename), tokens.len(), n))
            }
            SlotAction::Restore { filename } => {
                let path = dir.join(&filename);
                if !path.is_file() {
                    return Err(BackendError::SlotFile(format!(
                        "no slot file `{filename}` in --slot-save-path {}",
                        dir.display()
                    )));
                }
                self.save_to_ram(i);
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                self.slots[i].cache.clear();
                self.slots[i].key = None;
                // Room for llama-server's packed token list (a few words more than the tokens).
                let loaded = self
                    .ctx
                    .state_seq_load_file(&path, seq, self.n_ctx_slot + 8)
                    .map_err(|e| {
                        format!("{e}: not a slot file of this model and cache type, or no room in the KV cache")
                    })
                    .and_then(|(packed, n)| Ok((unpack_slot_tokens(packed)?, n)))
                    .and_then(|(tokens, n)| {
                        if tokens.len() > self.n_ctx_slot {
                            Err(format!("{} tokens do not fit a slot of {}", tokens.len(), self.n_ctx_slot))
                        } else if tokens.iter().any(|t| t.0 < 0 || t.0 >= n_vocab) {
                            Err("the file holds tokens that are not in this model's vocabulary".to_owned())
                        } else {
                            Ok((tokens, n))
                        }
                    });
                match loaded {
                    Ok((tokens, n)) => {
                        let n_tokens = tokens.len();
                        self.slots[i].cache = tokens;
                        Ok(done(Some(filename), n_tokens, n))
                    }
                    Err(why) => {
                        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                        Err(BackendError::SlotFile(format!(
                            "unable to restore slot {id_slot} from `{filename}`: {why}"
                        )))
                    }
                }
            }
            SlotAction::Erase => {
                let n = self.slots[i].cache.len();
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                self.slots[i].cache.clear();
                self.slots[i].key = None;
                Ok(done(None, n, 0))
            }
        }
    }

    /// The deferred slot actions whose slot is free now.
    fn run_deferred(&mut self) {
        let mut i = 0;
        while i < self.deferred.len() {
            let id = self.deferred[i].0 as usize;
            if self.slots.get(id).is_some_and(|s| s.active.is_some()) {
                i += 1;
                continue;
            }
            let (id_slot, action, reply) = self.deferred.swap_remove(i);
            let _ = reply.send(self.slot_action(id_slot, action));
        }
    }

    /// Copy slot `i`'s cells to the RAM cache, unless it already holds them. One copy of one
    /// sequence: the most the prompt cache ever holds up a decode step.
    fn save_to_ram(&mut self, i: usize) {
        let slot = &self.slots[i];
        if slot.copy_pending || slot.cache.len() < MIN_SAVE_TOKENS || !self.caches.ram.would_keep(&slot.cache) {
            return;
        }
        let started = Instant::now();
        let Some(state) = crate::state::get(&self.ctx, slot.seq) else { return };
        self.metrics.prompt_cache_save_seconds.observe(started.elapsed().as_secs_f64());
        let (tokens, bytes) = (slot.cache.len(), state.len());
        if self.caches.ram.insert(slot.cache.clone(), Arc::new(state)) {
            tracing::debug!(
                seq = slot.seq,
                tokens,
                bytes,
                ram_bytes = self.caches.ram.bytes(),
                "slot saved to the RAM cache"
            );
        }
    }

    /// One scheduling step; returns how many sequences the decode step held, if one ran.
    fn step(&mut self) -> Option<u32> {
        self.drop_cancelled();
        self.assign_slots();
        if self.slots.iter().all(|s| s.active.is_none()) {
            return None;
        }
        loop {
            let plan = self.plan_batch();
            if plan.is_empty() {
                return None;
            }
            match self.ctx.decode(&mut self.batch) {
                Ok(()) => {
                    let sequences = plan.len() as u32;
                    self.after_decode(plan);
                    return Some(sequences);
                }
                Err(DecodeError::NoKvCacheSlot) => {
                    if !self.make_room() {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "llama_decode failed");
                    let slots: Vec<usize> = plan.iter().map(|p| p.slot).collect();
                    for i in slots {
                        self.fail(i, BackendError::Decode(e.to_string()));
                    }
                    return None;
                }
            }
        }
    }

    /// Sequences whose client left stop here, before any more decoding.
    fn drop_cancelled(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].active.as_ref().is_some_and(|a| a.tx.is_closed()) {
                tracing::debug!(seq = self.slots[i].seq, "client left; sequence cancelled");
                self.release(i);
            }
        }
        let before = self.queue.len();
        self.queue.retain(|job| !job.tx.is_closed() || job.forks.iter().any(|f| !f.tx.is_closed()));
        let dropped = before - self.queue.len();
        if dropped > 0 {
            self.metrics.queue_depth.dec_by(dropped as i64);
        }
    }

    /// Queued jobs take free slots in FIFO order. A job whose key's disk snapshot holds more
    /// of its prompt than any slot or the RAM cache goes to the disk thread first, and comes
    /// back with the snapshot read.
    fn assign_slots(&mut self) {
        while !self.queue.is_empty() {
            let Some(slot) = self.best_free_slot() else { return };
            let Some(job) = self.queue.pop_front() else { return };
            let job = match self.read_from_disk_first(slot, job) {
                Some(job) => job,
                None => continue,
            };
            self.metrics.queue_depth.dec();
            self.start(slot, job);
        }
    }

    /// Send `job` to the disk thread when its snapshot is worth reading (`None`), else give
    /// it back.
    fn read_from_disk_first(&self, slot: usize, job: Job) -> Option<Job> {
        let (Some(disk), Some(key)) = (&self.caches.disk, &job.prompt_cache_key) else { return Some(job) };
        if job.disk_checked || !job.cache_prompt {
            return Some(job);
        }
        let Some(tokens) = disk.tokens(key) else { return Some(job) };
        let usable = job.tokens.len().saturating_sub(1);
        let on_disk = common_prefix(&tokens, &job.tokens).min(usable);
        let here = common_prefix(&self.slots[slot].cache, &job.tokens).max(self.caches.ram.best_prefix(&job.tokens));
        if on_disk <= here.min(usable) {
            return Some(job);
        }
        let load = Command::Load { key: key.clone(), job: Box::new(job) };
        // The disk thread is gone: the job goes on without its snapshot.
        if let Err(mpsc::SendError(Command::Load { mut job, .. })) = disk.tx.send(load) {
            job.disk_checked = true;
            return Some(*job);
        }
        None
    }

    /// The free slot sharing the longest prefix with the next job's prompt; among equals the
    /// one that last served the job's `prompt_cache_key`, then the least recently used.
    fn best_free_slot(&self) -> Option<usize> {
        let job = self.queue.front()?;
        if let Some(id) = job.id_slot {
            let i = id as usize;
            return self.slots.get(i).filter(|s| s.active.is_none()).map(|_| i);
        }
        let key = job.prompt_cache_key.as_deref();
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .max_by_key(|(_, s)| {
                let same_key = key.is_some() && s.key.as_deref() == key;
                (common_prefix(&s.cache, &job.tokens), same_key, std::cmp::Reverse(s.released_at))
            })
            .map(|(i, _)| i)
    }

    /// Put `job` in slot `i`: reuse the longest cached prefix of its prompt (the slot's own
    /// cells, a RAM entry, or its disk snapshot), saving what the slot loses to RAM first.
    fn start(&mut self, i: usize, mut job: Job) {
        let forks = std::mem::take(&mut job.forks);
        self.start_one(i, job, None);
        for fork in forks {
            match self.free_slot_for_fork() {
                Some(j) => {
                    self.metrics.queue_depth.dec();
                    self.start_one(j, fork, Some(i));
                }
                // No slot now: it computes its prompt itself later (from a prefix cache, as
                // any job).
                None => self.queue.push_front(fork),
            }
        }
    }

    /// A free slot for a fork: the least recently used of those holding the fewest cells.
    fn free_slot_for_fork(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .min_by_key(|(_, s)| (s.cache.len(), s.released_at))
            .map(|(i, _)| i)
    }

    /// Put `job` in slot `i`; a fork of slot `parent` starts empty and waits for it.
    fn start_one(&mut self, i: usize, mut job: Job, parent: Option<usize>) {
        if parent.is_some() {
            // Its cells come from the parent: nothing of the slot's own is reused.
            job.cache_prompt = false;
        }
        let seq = self.slots[i].seq;
        // The last prompt token is always decoded again, so the step yields logits to sample.
        let usable = job.tokens.len().saturating_sub(1);
        let own = if job.cache_prompt { common_prefix(&self.slots[i].cache, &job.tokens).min(usable) } else { 0 };
        let ram = CacheLabels::of(CacheTier::Ram);
        let disk = CacheLabels::of(CacheTier::Disk);
        let mut restored = None;
        if job.cache_prompt && own < usable {
            let from_disk = job.restore.as_ref().map_or(0, |r| common_prefix(&r.tokens, &job.tokens).min(usable));
            let from_ram = self.caches.ram.best_prefix(&job.tokens).min(usable);
            let restore = if from_disk > own.max(from_ram) {
                job.restore.take()
            } else if from_ram > own {
                self.caches.ram.take(&job.tokens, own).map(|e| Restore {
                    tokens: e.tokens,
                    state: e.state,
                    tier: CacheTier::Ram,
                    read: std::time::Duration::ZERO,
                })
            } else {
                None
            };
            if self.caches.ram.enabled() && restore.as_ref().is_none_or(|r| r.tier != CacheTier::Ram) {
                self.metrics.prompt_cache_misses.get_or_create(&ram).inc();
            }
            if self.caches.disk.is_some() && job.prompt_cache_key.is_some() && restore.is_none() {
                self.metrics.prompt_cache_misses.get_or_create(&disk).inc();
            }
            if let Some(restore) = restore {
                self.save_to_ram(i);
                restored = self.restore(i, restore);
            }
        }
        let reuse = if job.cache_prompt { common_prefix(&self.slots[i].cache, &job.tokens).min(usable) } else { 0 };
        if self.slots[i].cache.len() >= reuse + MIN_SAVE_TOKENS {
            // Another conversation's cells, or this one's edited history: keep them in RAM.
            self.save_to_ram(i);
        }
        if reuse == 0 || self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(reuse as u32), None).is_err() {
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            self.slots[i].cache.clear();
        } else {
            self.slots[i].cache.truncate(reuse);
        }
        let reuse = self.slots[i].cache.len();
        if let Some(tier) = restored {
            let labels = CacheLabels::of(tier);
            self.metrics.prompt_cache_hits.get_or_create(&labels).inc();
            self.metrics.prompt_cache_restored_tokens.get_or_create(&labels).inc_by(reuse as u64);
        }
        let ignore_eos = job.sampling.ignore_eos;
        let sampler = crate::sampler::build(&job.sampling, job.grammar, self.model.n_vocab(), &job.tokens);
        self.metrics.cached_prompt_tokens.inc_by(reuse as u64);
        self.slots[i].key = job.prompt_cache_key;
        self.slots[i].active = Some(Active {
            prompt_done: reuse,
            cached_tokens: reuse as u32,
            sampler,
            pending: None,
            generated: 0,
            max_tokens: job.max_tokens,
            ignore_eos,
            return_tokens: job.return_tokens || job.logprobs.is_some(),
            logprobs: job.logprobs,
            prompt_logprobs: job.prompt_logprobs,
            utf8: Utf8Decoder::new(),
            stop: StopMatcher::new(job.stop),
            tx: job.tx,
            queued_at: job.queued_at,
            fork_of: parent,
            started_at: Instant::now(),
            first_token_at: None,
            last_token_at: None,
            prompt: job.tokens,
        });
        tracing::debug!(seq, reused = reuse, restored = ?restored, fork_of = ?parent, "sequence started");
    }

    /// Replace slot `i`'s cells with a saved state; the tier it came from, or `None` when
    /// llama.cpp refused it (no room): then the slot is empty, and a RAM entry goes back.
    fn restore(&mut self, i: usize, restore: Restore) -> Option<CacheTier> {
        let seq = self.slots[i].seq;
        let started = Instant::now();
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.slots[i].cache.clear();
        // A unified cache may be full of idle slots' cells: they make room, one at a time.
        let mut set = crate::state::set(&mut self.ctx, seq, &restore.state);
        while !set && self.evict_idle(Some(i)) {
            set = crate::state::set(&mut self.ctx, seq, &restore.state);
        }
        if set {
            let labels = CacheLabels::of(restore.tier);
            let took = restore.read + started.elapsed();
            self.metrics.prompt_cache_restore_seconds.get_or_create(&labels).observe(took.as_secs_f64());
            tracing::debug!(seq, tokens = restore.tokens.len(), tier = ?restore.tier, "prompt state restored");
            self.slots[i].cache = restore.tokens;
            Some(restore.tier)
        } else {
            tracing::warn!(seq, tokens = restore.tokens.len(), "llama.cpp refused a cached prompt state; recomputing");
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            if restore.tier == CacheTier::Ram {
                self.caches.ram.insert(restore.tokens, restore.state);
            }
            None
        }
    }

    /// Fill the batch: every generating sequence's next token, then prompt chunks.
    fn plan_batch(&mut self) -> Vec<Planned> {
        self.batch.clear();
        let mut plan = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(active) = &slot.active else { continue };
            if let Some(token) = active.pending {
                let at = self.batch.n_tokens();
                if self.batch.add(token, slot.cache.len() as i32, &[slot.seq], true).is_err() {
                    break;
                }
                plan.push(Planned {
                    slot: i,
                    tokens: vec![token],
                    logits_at: Some(at),
                    prefill: false,
                    all_logits_from: None,
                });
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(active) = &slot.active else { continue };
            let remaining = active.prompt.len() - active.prompt_done;
            let budget = self.n_batch.saturating_sub(self.batch.n_tokens() as usize);
            if remaining == 0 || active.pending.is_some() || active.fork_of.is_some() || budget == 0 {
                continue;
            }
            // The last prompt token gets a step of its own (with the other sequences' next
            // tokens), as it has when a cached prefix covers all the rest: its logits then come
            // out of the same computation whether the prefix was computed now, reused or
            // restored, and greedy answers do not depend on the cache. (llama.cpp's CPU
            // kernels sum a row of a many-row batch in another order than a lone row.)
            let take = if remaining > 1 { (remaining - 1).min(budget) } else { 1 };
            let chunk = &active.prompt[active.prompt_done..active.prompt_done + take];
            let last = take == remaining;
            let mut logits_at = None;
            let all = active.prompt_logprobs.is_some();
            let all_logits_from = all.then(|| self.batch.n_tokens());
            for (k, &token) in chunk.iter().enumerate() {
                let want = all || last && k + 1 == take;
                if last && k + 1 == take {
                    logits_at = Some(self.batch.n_tokens());
                }
                let pos = (slot.cache.len() + k) as i32;
                if self.batch.add(token, pos, &[slot.seq], want).is_err() {
                    return plan;
                }
            }
            plan.push(Planned { slot: i, tokens: chunk.to_vec(), logits_at, prefill: true, all_logits_from });
        }
        plan
    }

    /// Decoding found no room in the KV cache: evict the least recently used idle prefix
    /// cache (saved to RAM first), else end the longest active sequence. False when nothing
    /// could be freed.
    fn make_room(&mut self) -> bool {
        if self.evict_idle(None) {
            return true;
        }
        let longest = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_some())
            .max_by_key(|(_, s)| s.cache.len())
            .map(|(i, _)| i);
        match longest {
            Some(i) => {
                tracing::warn!(seq = self.slots[i].seq, "KV cache full; ending the longest sequence");
                self.finish(i, FinishReason::Length);
                let seq = self.slots[i].seq;
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                self.slots[i].cache.clear();
                true
            }
            None => false,
        }
    }

    /// Empty the least recently used idle slot holding cells (not `except`), saving them to
    /// RAM first; false when there is none.
    fn evict_idle(&mut self, except: Option<usize>) -> bool {
        let idle = self
            .slots
            .iter()
            .enumerate()
            .filter(|&(j, s)| Some(j) != except && s.active.is_none() && !s.cache.is_empty())
            .min_by_key(|(_, s)| s.released_at)
            .map(|(j, _)| j);
        let Some(j) = idle else { return false };
        self.save_to_ram(j);
        let seq = self.slots[j].seq;
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.slots[j].cache.clear();
        true
    }

    fn after_decode(&mut self, plan: Vec<Planned>) {
        self.step += 1;
        let sequences = plan.len() as u32;
        self.metrics.decode_step_sequences.observe(f64::from(sequences));
        // The decode ran every pending cross-stream copy.
        for slot in &mut self.slots {
            slot.copy_pending = false;
        }
        let now = Instant::now();
        for p in plan {
            let n = p.tokens.len();
            let slot = &mut self.slots[p.slot];
            slot.cache.extend_from_slice(&p.tokens);
            let Some(active) = slot.active.as_mut() else { continue };
            if p.prefill {
                if let (Some(from), Some(top)) = (p.all_logits_from, active.prompt_logprobs) {
                    let before = active.prompt_done;
                    send_prompt_logprobs(self.model, &self.ctx, active, before, n, from, top);
                }
                active.prompt_done += n;
                self.metrics.prompt_tokens.inc_by(n as u64);
            } else {
                active.pending = None;
            }
            let Some(at) = p.logits_at else { continue };
            if p.prefill {
                // The prompt is in: its forks take its cells and sample from its logits.
                let forks: Vec<usize> = (0..self.slots.len())
                    .filter(|&j| self.slots[j].active.as_ref().is_some_and(|a| a.fork_of == Some(p.slot)))
                    .collect();
                for j in forks {
                    self.adopt(j, p.slot);
                    self.sample(j, at, now);
                }
            }
            self.sample(p.slot, at, now);
        }
    }

    /// Fork `j` takes slot `parent`'s cells (its prompt, just decoded) as its own.
    fn adopt(&mut self, j: usize, parent: usize) {
        let (src, dst) = (self.slots[parent].seq, self.slots[j].seq);
        let _ = self.ctx.clear_kv_cache_seq(Some(dst as u32), None, None);
        // The whole sequence: across streams (a cache that is not unified) llama.cpp copies
        // only whole ones, at the next decode; within one, the cells are shared, not copied.
        let _ = self.ctx.copy_kv_cache_seq(src, dst, None, None);
        self.slots[j].cache = self.slots[parent].cache.clone();
        self.slots[j].copy_pending = true;
        let cached = self.slots[parent].active.as_ref().map_or(0, |a| a.cached_tokens);
        if let Some(active) = self.slots[j].active.as_mut() {
            active.fork_of = None;
            active.prompt_done = active.prompt.len();
            active.cached_tokens = cached;
        }
        tracing::debug!(seq = dst, from = src, tokens = self.slots[j].cache.len(), "fork took its prompt's cells");
    }

    /// Sample slot `i`'s next token from the logits at batch index `at`, and pass it on.
    fn sample(&mut self, i: usize, at: i32, now: Instant) {
        let Some(active) = self.slots[i].active.as_mut() else { return };
        let token = active.sampler.sample(&self.ctx, at);
        let logprobs = active.logprobs.map(|n| token_logprobs(self.model, self.ctx.get_logits_ith(at), token, n));
        active.generated += 1;
        self.metrics.completion_tokens.inc();
        match active.last_token_at {
            None => {
                active.first_token_at = Some(now);
                self.metrics.time_to_first_token.observe(now.duration_since(active.queued_at).as_secs_f64());
            }
            Some(t) => self.metrics.inter_token_latency.observe(now.duration_since(t).as_secs_f64()),
        }
        active.last_token_at = Some(now);
        if let Some(reason) = self.accept(i, token, logprobs) {
            self.finish(i, reason);
        }
    }

    /// Turn a sampled token into text; `Some` when the sequence ends with it.
    fn accept(&mut self, i: usize, token: LlamaToken, logprobs: Option<TokenLogprobs>) -> Option<FinishReason> {
        let vocab = self.model.vocab();
        let cache_len = self.slots[i].cache.len();
        let active = self.slots[i].active.as_mut()?;
        if vocab.is_eog(token) && !active.ignore_eos {
            return Some(FinishReason::Stop);
        }
        // The same bytes as the text it makes, so a client that joins the pieces gets the text.
        let piece = vocab.token_to_piece(token, false, None);
        if active.return_tokens {
            let sampled = SampledToken { id: token.0, piece: piece.clone(), logprobs, usage: active.usage() };
            if !active.tx.send(GenerationEvent::Detail(Detail::Token(sampled))) {
                return Some(FinishReason::Stop);
            }
        }
        let text = active.utf8.push(&piece);
        if !text.is_empty() {
            match active.stop.push(&text) {
                StopOutcome::Continue(t) => {
                    if !t.is_empty() && !active.tx.send(GenerationEvent::Text(t)) {
                        return Some(FinishReason::Stop);
                    }
                }
                StopOutcome::Stopped(t) => {
                    if !t.is_empty() {
                        active.tx.send(GenerationEvent::Text(t));
                    }
                    if let (true, Some(word)) = (active.return_tokens, active.stop.matched()) {
                        active.tx.send(GenerationEvent::Detail(Detail::StopWord(word.to_owned())));
                    }
                    active.stop = StopMatcher::default();
                    active.utf8 = Utf8Decoder::new();
                    return Some(FinishReason::Stop);
                }
            }
        }
        if active.max_tokens.is_some_and(|m| active.generated >= m) || cache_len + 1 >= self.n_ctx_slot {
            return Some(FinishReason::Length);
        }
        active.pending = Some(token);
        None
    }

    /// End a sequence normally: free the slot, then flush held text and report
    /// usage, so a client that sees `Done` never sees its slot still busy.
    fn finish(&mut self, i: usize, reason: FinishReason) {
        let Some(mut active) = self.release(i) else { return };
        let mut tail = active.utf8.finish();
        if !tail.is_empty() {
            // Bytes left at the end can still complete a stop sequence.
            match active.stop.push(&tail) {
                StopOutcome::Continue(t) | StopOutcome::Stopped(t) => tail = t,
            }
        }
        tail.push_str(&active.stop.finish());
        if !tail.is_empty() {
            active.tx.send(GenerationEvent::Text(tail));
        }
        active.tx.send(GenerationEvent::Done { finish_reason: reason, usage: active.usage() });
        // After the answer is out: the copy does not hold it up. (A key forgotten meanwhile,
        // its session deleted, is no longer the slot's: nothing is written.)
        if let Some(key) = self.slots[i].key.clone() {
            self.snapshot(i, key);
        }
    }

    /// Hand slot `i`'s state to the disk thread under `key`, unless its snapshot holds
    /// exactly these tokens already. The same bytes go to the RAM cache, so the slot's
    /// eviction later copies nothing.
    fn snapshot(&mut self, i: usize, key: String) {
        let Some(disk) = &self.caches.disk else { return };
        let slot = &self.slots[i];
        if slot.copy_pending || slot.cache.is_empty() || disk.tokens(&key).is_some_and(|t| *t == slot.cache) {
            return;
        }
        let started = Instant::now();
        let Some(state) = crate::state::get(&self.ctx, slot.seq) else { return };
        self.metrics.prompt_cache_save_seconds.observe(started.elapsed().as_secs_f64());
        let state = Arc::new(state);
        disk.save(key, slot.cache.clone(), Arc::clone(&state));
        if slot.cache.len() >= MIN_SAVE_TOKENS {
            self.caches.ram.insert(slot.cache.clone(), state);
        }
    }

    fn fail(&mut self, i: usize, error: BackendError) {
        let seq = self.slots[i].seq;
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.slots[i].cache.clear();
        if let Some(active) = self.release(i) {
            active.tx.send(GenerationEvent::Error(error));
        }
    }

    /// The slot takes new work from the next step on; its cells stay as a
    /// prefix cache. The busy count is published at once.
    fn release(&mut self, i: usize) -> Option<Active> {
        let active = self.slots[i].active.take();
        // Forks still waiting for this prompt compute it themselves.
        for slot in &mut self.slots {
            if let Some(fork) = slot.active.as_mut().filter(|a| a.fork_of == Some(i)) {
                fork.fork_of = None;
            }
        }
        self.slots[i].released_at = self.step;
        self.publish_stats(None);
        active
    }

    /// The backend is going away: every waiting and running request ends with an error.
    fn fail_all(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].active.is_some() {
                self.fail(i, BackendError::Unavailable);
            }
        }
        for job in self.queue.drain(..) {
            for fork in job.forks {
                fork.tx.send(GenerationEvent::Error(BackendError::Unavailable));
            }
            job.tx.send(GenerationEvent::Error(BackendError::Unavailable));
        }
        for (_, _, reply) in self.deferred.drain(..) {
            let _ = reply.send(Err(BackendError::Unavailable));
        }
    }

    fn publish_stats(&self, step_sequences: Option<u32>) {
        let busy = self.slots.iter().filter(|s| s.active.is_some()).count() as u32;
        self.metrics.slots_busy.set(i64::from(busy));
        let Ok(mut stats) = self.stats.lock() else { return };
        stats.slots_busy = busy;
        stats.queued = self.queue.len() as u32;
        for (s, slot) in stats.slots.iter_mut().zip(&self.slots) {
            s.is_processing = slot.active.is_some();
            s.n_decoded = slot.active.as_ref().map_or(0, |a| a.generated);
        }
        if let Some(n) = step_sequences {
            stats.steps = self.step;
            stats.max_sequences = stats.max_sequences.max(n);
            if stats.recent.len() == RECENT_STEPS {
                stats.recent.pop_front();
            }
            stats.recent.push_back(n);
        }
    }
}

/// The tokens of a slot file: a plain list (chorus, older llama-server), or llama-server's
/// packed list (`LLAMA_TOKEN_NULL`, version 1, the count, the tokens, then media chunks,
/// which a text model cannot restore).
fn unpack_slot_tokens(packed: Vec<LlamaToken>) -> Result<Vec<LlamaToken>, String> {
    if packed.first().is_none_or(|t| t.0 != -1) {
        return Ok(packed);
    }
    let word = |i: usize| packed.get(i).map(|t| t.0 as u32).ok_or("the token list is cut short");
    if word(1)? != 1 {
        return Err("unsupported llama-server token list version".to_owned());
    }
    let n = word(2)? as usize;
    let tokens = packed.get(3..3 + n).ok_or("the token list is cut short")?.to_vec();
    if word(3 + n).unwrap_or(0) != 0 {
        return Err("the slot holds images or audio, which this server cannot restore".to_owned());
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_files_hold_plain_or_packed_token_lists() {
        let plain: Vec<LlamaToken> = [5, 6, 7].map(LlamaToken).to_vec();
        assert_eq!(unpack_slot_tokens(plain.clone()).unwrap(), plain);
        let packed = [-1, 1, 3, 5, 6, 7, 0].map(LlamaToken).to_vec();
        assert_eq!(unpack_slot_tokens(packed).unwrap(), plain);
        assert!(unpack_slot_tokens([-1, 2, 0, 0].map(LlamaToken).to_vec()).is_err(), "unknown version");
        assert!(unpack_slot_tokens([-1, 1, 9, 5].map(LlamaToken).to_vec()).is_err(), "cut short");
        assert!(unpack_slot_tokens([-1, 1, 1, 5, 1, 0].map(LlamaToken).to_vec()).is_err(), "media");
    }
}

/// The log-softmax of `logits` at `token`, and the `n` most likely tokens (a bounded heap over
/// the vocabulary, not a sort of it: Qwen's has 151,936 entries).
/// The prompt tokens a chunk's logits score: the chunk holds prompt positions `before ..
/// before + n`, with logits from batch index `from`; the logits at position `p` score token
/// `p + 1`. The first prompt token (no logits score it) goes first, without logprobs.
fn send_prompt_logprobs(
    model: &LlamaModel,
    ctx: &LlamaContext<'_>,
    active: &Active,
    before: usize,
    n: usize,
    from: i32,
    top: u32,
) {
    let vocab = model.vocab();
    let token = |id: LlamaToken, logprobs| SampledToken {
        id: id.0,
        piece: vocab.token_to_piece(id, false, None),
        logprobs,
        usage: active.usage(),
    };
    if before == 0 && !active.prompt.is_empty() {
        active.tx.send(GenerationEvent::Detail(Detail::PromptToken(token(active.prompt[0], None))));
    }
    for k in 0..n {
        let Some(&next) = active.prompt.get(before + k + 1) else { break };
        let lp = token_logprobs(model, ctx.get_logits_ith(from + k as i32), next, top);
        active.tx.send(GenerationEvent::Detail(Detail::PromptToken(token(next, Some(lp)))));
    }
}

fn token_logprobs(model: &LlamaModel, logits: &[f32], token: LlamaToken, n: u32) -> TokenLogprobs {
    use std::cmp::Reverse;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = f64::from(max) + sum.ln();
    let logprob = |l: f32| (f64::from(l) - log_z) as f32;
    // A min-heap of the best `n` so far by logit; on ties the lower id stays.
    let n = n as usize;
    let mut best: std::collections::BinaryHeap<Reverse<(OrdLogit, Reverse<i32>)>> =
        std::collections::BinaryHeap::with_capacity(n + 1);
    if n > 0 {
        for (id, &l) in logits.iter().enumerate() {
            best.push(Reverse((OrdLogit(l), Reverse(id as i32))));
            if best.len() > n {
                best.pop();
            }
        }
    }
    let mut top: Vec<(f32, i32)> = best.into_iter().map(|Reverse((l, id))| (l.0, id.0)).collect();
    top.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let vocab = model.vocab();
    TokenLogprobs {
        logprob: usize::try_from(token.0).ok().and_then(|t| logits.get(t)).map_or(f32::NEG_INFINITY, |&l| logprob(l)),
        top: top
            .into_iter()
            .map(|(l, id)| TopLogprob {
                id,
                piece: vocab.token_to_piece(LlamaToken(id), true, None),
                logprob: logprob(l),
            })
            .collect(),
    }
}

/// A logit ordered by `total_cmp`, for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdLogit(f32);

impl Eq for OrdLogit {}

impl PartialOrd for OrdLogit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdLogit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
