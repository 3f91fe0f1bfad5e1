//! Characters: Character Card V2/V3 personas hosted on the server, with lasting state.
//!
//! - [`card`]: reading, validating and writing cards (JSON, PNG `chara`/`ccv3` chunks, CHARX).
//! - [`dir`]: the characters directory (`--characters-dir`), one card file per character.
//! - [`lorebook`]: which `character_book` entries a turn activates.
//! - [`prompt`]: the messages a character's turn sends to the model.
//! - [`vitals`]: typed, bounded state; [`memory`]: episodic memory retrieval.
//! - [`instance`]: character sessions and the engine's character methods; `turn`: one turn.
//! - [`conversation`]: AI-to-AI conversations between cards and ad-hoc personalities.

pub mod card;
pub mod conversation;
pub mod dir;
pub mod instance;
pub mod lorebook;
pub mod memory;
pub mod prompt;
mod public;
pub(crate) mod turn;
pub mod vitals;

pub use instance::{Character, CharacterError, DEFAULT_USER, character_session_id, user_name};
