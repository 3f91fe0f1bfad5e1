//! The model thread: one OS thread owns the llama.cpp context and runs
//! continuous batching over its slots.
//!
//! Each step it (1) takes new jobs from the channel without waiting while any
//! sequence is active, (2) drops sequences whose client left, (3) places
//! queued jobs in free slots, preferring the slot whose cached tokens share the
//! longest prefix with the prompt, (4) builds one batch with the next token of
//! every generating sequence first and then prompt chunks up to `n_batch`, so
//! a long prompt never stalls the others for more than one step, (5) decodes,
//! and (6) samples every sequence that produced logits, streaming its text.
//!
//! Each slot's sequence holds at most `n_ctx_slot` tokens (`n_ctx / n_parallel`
//! cells of its own, or all `n_ctx` with a unified KV cache) and ends with
//! `length` at that size. A free slot keeps its tokens' cells as a prefix
//! cache until a new sequence reuses or cuts them, or (unified cache)
//! decoding needs room: then idle caches are evicted first and, if that is
//! not enough, the longest active sequence ends with `length`.

use std::collections::VecDeque;
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use chorus_engine::stream::GenerationSender;
use chorus_engine::text::{StopMatcher, StopOutcome, Utf8Decoder};
use chorus_engine::{BackendError, BackendStats, FinishReason, GenerationEvent, Metrics, SamplingParams, Usage};
use llama_cpp_2::DecodeError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

/// How many recent decode steps `/health` reports.
const RECENT_STEPS: usize = 32;

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
}

impl SharedStats {
    pub(crate) fn new(slots_total: u32) -> Self {
        Self { slots_total, slots_busy: 0, queued: 0, recent: VecDeque::new(), max_sequences: 0, steps: 0 }
    }

    pub(crate) fn snapshot(&self) -> BackendStats {
        BackendStats {
            slots_total: self.slots_total,
            slots_busy: self.slots_busy,
            queued: self.queued,
            last_steps_sequences: self.recent.iter().copied().collect(),
            max_sequences: self.max_sequences,
            steps: self.steps,
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
    active: Option<Active>,
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
    utf8: Utf8Decoder,
    stop: StopMatcher,
    tx: GenerationSender,
    queued_at: Instant,
    last_token_at: Option<Instant>,
}

impl Active {
    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt.len() as u32,
            completion_tokens: self.generated,
            cached_tokens: self.cached_tokens,
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
}

/// Run the model thread until the job channel closes.
pub(crate) fn run(
    model: &LlamaModel,
    ctx: LlamaContext<'_>,
    n_parallel: u32,
    n_ctx_slot: u32,
    jobs: mpsc::Receiver<Job>,
    stats: &Mutex<SharedStats>,
    metrics: &Metrics,
) {
    let n_batch = ctx.n_batch() as usize;
    let mut worker = Worker {
        model,
        ctx,
        slots: (0..n_parallel as i32)
            .map(|seq| Slot { seq, cache: Vec::new(), released_at: 0, active: None })
            .collect(),
        queue: VecDeque::new(),
        batch: LlamaBatch::new(n_batch, n_parallel as i32),
        n_batch,
        n_ctx_slot: n_ctx_slot as usize,
        step: 0,
        stats,
        metrics,
    };
    loop {
        let busy = worker.slots.iter().any(|s| s.active.is_some());
        if !busy && worker.queue.is_empty() {
            // Idle: block until work arrives or the backend is dropped.
            match jobs.recv() {
                Ok(job) => worker.queue.push_back(job),
                Err(_) => break,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => worker.queue.push_back(job),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    worker.fail_all();
                    return;
                }
            }
        }
        let decoded = worker.step();
        // Once per iteration, after sequences finished, so an idle thread never
        // leaves a stale busy count behind.
        worker.publish_stats(decoded);
    }
}

impl Worker<'_, '_> {
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
        self.queue.retain(|job| !job.tx.is_closed());
        let dropped = before - self.queue.len();
        if dropped > 0 {
            self.metrics.queue_depth.dec_by(dropped as i64);
        }
    }

    /// Queued jobs take free slots in FIFO order.
    fn assign_slots(&mut self) {
        while !self.queue.is_empty() {
            let Some(slot) = self.best_free_slot() else { return };
            let Some(job) = self.queue.pop_front() else { return };
            self.metrics.queue_depth.dec();
            self.start(slot, job);
        }
    }

    /// The free slot sharing the longest prefix with the next job's prompt;
    /// the least recently used one when none shares any.
    fn best_free_slot(&self) -> Option<usize> {
        let prompt = &self.queue.front()?.tokens;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .max_by_key(|(_, s)| (common_prefix(&s.cache, prompt), std::cmp::Reverse(s.released_at)))
            .map(|(i, _)| i)
    }

    fn start(&mut self, i: usize, job: Job) {
        let seq = self.slots[i].seq;
        // Reuse the shared prefix, but always decode the last prompt token again
        // so the step yields logits to sample from.
        let reuse = common_prefix(&self.slots[i].cache, &job.tokens).min(job.tokens.len().saturating_sub(1));
        if self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(reuse as u32), None).is_err() || reuse == 0 {
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            self.slots[i].cache.clear();
        } else {
            self.slots[i].cache.truncate(reuse);
        }
        let reuse = self.slots[i].cache.len();
        let ignore_eos = job.sampling.ignore_eos;
        let sampler = crate::sampler::build(&job.sampling, job.grammar, self.model.n_vocab(), &job.tokens);
        self.metrics.cached_prompt_tokens.inc_by(reuse as u64);
        self.slots[i].active = Some(Active {
            prompt_done: reuse,
            cached_tokens: reuse as u32,
            sampler,
            pending: None,
            generated: 0,
            max_tokens: job.max_tokens,
            ignore_eos,
            utf8: Utf8Decoder::new(),
            stop: StopMatcher::new(job.stop),
            tx: job.tx,
            queued_at: job.queued_at,
            last_token_at: None,
            prompt: job.tokens,
        });
        tracing::debug!(seq, reused = reuse, "sequence started");
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
                plan.push(Planned { slot: i, tokens: vec![token], logits_at: Some(at), prefill: false });
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(active) = &slot.active else { continue };
            let remaining = active.prompt.len() - active.prompt_done;
            let budget = self.n_batch.saturating_sub(self.batch.n_tokens() as usize);
            if remaining == 0 || active.pending.is_some() || budget == 0 {
                continue;
            }
            let take = remaining.min(budget);
            let chunk = &active.prompt[active.prompt_done..active.prompt_done + take];
            let last = take == remaining;
            let mut logits_at = None;
            for (k, &token) in chunk.iter().enumerate() {
                let want = last && k + 1 == take;
                if want {
                    logits_at = Some(self.batch.n_tokens());
                }
                let pos = (slot.cache.len() + k) as i32;
                if self.batch.add(token, pos, &[slot.seq], want).is_err() {
                    return plan;
                }
            }
            plan.push(Planned { slot: i, tokens: chunk.to_vec(), logits_at, prefill: true });
        }
        plan
    }

    /// Decoding found no room in the KV cache: evict idle prefix caches, else
    /// end the longest active sequence. False when nothing could be freed.
    fn make_room(&mut self) -> bool {
        let mut freed = false;
        for slot in self.slots.iter_mut().filter(|s| s.active.is_none() && !s.cache.is_empty()) {
            let _ = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            slot.cache.clear();
            freed = true;
        }
        if freed {
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

    fn after_decode(&mut self, plan: Vec<Planned>) {
        self.step += 1;
        let sequences = plan.len() as u32;
        self.metrics.decode_step_sequences.observe(f64::from(sequences));
        let now = Instant::now();
        for p in plan {
            let n = p.tokens.len();
            let slot = &mut self.slots[p.slot];
            slot.cache.extend_from_slice(&p.tokens);
            let Some(active) = slot.active.as_mut() else { continue };
            if p.prefill {
                active.prompt_done += n;
                self.metrics.prompt_tokens.inc_by(n as u64);
            } else {
                active.pending = None;
            }
            let Some(at) = p.logits_at else { continue };
            let token = active.sampler.sample(&self.ctx, at);
            active.generated += 1;
            self.metrics.completion_tokens.inc();
            match active.last_token_at {
                None => self.metrics.time_to_first_token.observe(now.duration_since(active.queued_at).as_secs_f64()),
                Some(t) => self.metrics.inter_token_latency.observe(now.duration_since(t).as_secs_f64()),
            }
            active.last_token_at = Some(now);
            let outcome = self.accept(p.slot, token);
            if let Some(reason) = outcome {
                self.finish(p.slot, reason);
            }
        }
    }

    /// Turn a sampled token into text; `Some` when the sequence ends with it.
    fn accept(&mut self, i: usize, token: LlamaToken) -> Option<FinishReason> {
        let vocab = self.model.vocab();
        let cache_len = self.slots[i].cache.len();
        let active = self.slots[i].active.as_mut()?;
        if vocab.is_eog(token) && !active.ignore_eos {
            return Some(FinishReason::Stop);
        }
        let piece = vocab.token_to_piece(token, false, None);
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
            job.tx.send(GenerationEvent::Error(BackendError::Unavailable));
        }
    }

    fn publish_stats(&self, step_sequences: Option<u32>) {
        let busy = self.slots.iter().filter(|s| s.active.is_some()).count() as u32;
        self.metrics.slots_busy.set(i64::from(busy));
        let Ok(mut stats) = self.stats.lock() else { return };
        stats.slots_busy = busy;
        stats.queued = self.queue.len() as u32;
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

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
