//! Keeping a session's prompt inside its context. The stored transcript is
//! never altered; what changes is the window of it that the model sees: the
//! agent's system prompt, then the history from a cut onwards. A cut always
//! falls at the start of a turn (a `user` message), so a turn's tool calls and
//! their results stay together, and the current turn is always whole.
//!
//! The window only moves when the prompt no longer fits: when its tokens plus
//! a reserve for the answer exceed the session's budget, the window drops the
//! oldest turns until the prompt takes at most half the budget. Between two
//! such moves the prompt's start stays the same, so the slot's KV cache keeps
//! serving it as a prefix, and a long conversation is re-read once per
//! compaction, not once per turn. Whole turns are dropped rather than
//! summarised by the model: a summary would cost a generation on every
//! compaction and change the prompt's prefix each time it is refreshed.

use crate::Role;

/// How a compaction moved the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Index into the history of the first message the model sees.
    pub(crate) start: usize,
    /// The prompt's tokens with that start.
    pub(crate) prompt_tokens: u32,
}

/// Whether the window starting at `current` still fits, and if not, where it should start.
///
/// `roles` are the history's roles in order; `budget` is the tokens a sequence of the session
/// may hold; `reserve` the tokens kept free for the answer; `count(start)` the prompt's tokens
/// when the history is shown from `start`. Returns `Ok(None)` when the current window fits (or
/// nothing can be dropped: the current turn is all there is), `Ok(Some(cut))` with the smallest
/// cut whose prompt takes at most half the budget with the reserve, or the latest cut possible
/// when none does.
///
/// # Errors
/// `count`'s error.
pub(crate) fn choose<E>(
    roles: &[Role],
    current: usize,
    budget: u32,
    reserve: u32,
    mut count: impl FnMut(usize) -> Result<u32, E>,
) -> Result<Option<Cut>, E> {
    let n = count(current)?;
    if n.saturating_add(reserve) <= budget {
        return Ok(None);
    }
    // Turn starts after the current one, up to the current turn's own start.
    let cuts: Vec<usize> = (current + 1..roles.len()).filter(|&i| roles[i] == Role::User).collect();
    if cuts.is_empty() {
        return Ok(None);
    }
    let target = budget / 2;
    // The prompt shrinks as the cut moves later: search for the first cut that fits the target.
    let (mut lo, mut hi) = (0, cuts.len() - 1);
    let mut best: Option<Cut> = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let tokens = count(cuts[mid])?;
        if tokens.saturating_add(reserve) <= target {
            best = Some(Cut { start: cuts[mid], prompt_tokens: tokens });
            if mid == 0 {
                break;
            }
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    match best {
        Some(cut) => Ok(Some(cut)),
        None => {
            let last = cuts[cuts.len() - 1];
            Ok(Some(Cut { start: last, prompt_tokens: count(last)? }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Assistant as A, Tool as T, User as U};

    /// Each message costs 100 tokens, the system prompt 50.
    fn count(roles: &[Role]) -> impl FnMut(usize) -> Result<u32, ()> + '_ {
        move |start| Ok(50 + 100 * (roles.len() - start) as u32)
    }

    #[test]
    fn a_window_that_fits_stays() {
        let roles = [U, A, U, A, U];
        assert_eq!(choose(&roles, 0, 1000, 100, count(&roles)), Ok(None));
    }

    #[test]
    fn an_overflowing_window_drops_whole_turns_to_half_the_budget() {
        // 10 turns of user + assistant, then the new question: 2,150 tokens.
        let mut roles: Vec<Role> = (0..10).flat_map(|_| [U, A]).collect();
        roles.push(U);
        let cut = choose(&roles, 0, 2000, 100, count(&roles)).unwrap().unwrap();
        assert_eq!(roles[cut.start], U, "a cut starts a turn");
        // At most 1,000 - 100 tokens of prompt: 8 messages at most, from a user message.
        assert_eq!(cut.start, 14);
        assert_eq!(cut.prompt_tokens, 750);
        // The next turn, one message longer, still fits: the window stays put.
        roles.extend([A, U]);
        assert_eq!(choose(&roles, cut.start, 2000, 100, count(&roles)), Ok(None));
    }

    #[test]
    fn tool_calls_and_results_stay_with_their_turn() {
        let roles = [U, A, T, T, A, U, A, T, A, U];
        let cut = choose(&roles, 0, 900, 0, count(&roles)).unwrap().unwrap();
        assert!(matches!(cut.start, 5 | 9), "{cut:?}");
        assert_eq!(roles[cut.start], U);
    }

    #[test]
    fn the_current_turn_is_never_cut() {
        // One long turn: nothing to drop; the backend refuses it if it is too long.
        let roles = [U, A, T, A, T];
        assert_eq!(choose(&roles, 0, 100, 10, count(&roles)), Ok(None));
        // When even the latest cut is too long, the window starts at the current turn.
        let roles = [U, A, U, A, T, A, T, A, T];
        let cut = choose(&roles, 0, 500, 0, count(&roles)).unwrap().unwrap();
        assert_eq!(cut.start, 2);
    }
}
