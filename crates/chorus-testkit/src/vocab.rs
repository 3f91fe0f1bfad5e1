//! The tokenizer written into every test model: a GPT-2-style byte-level BPE vocabulary
//! (`tokenizer.ggml.model = "gpt2"`) whose merges are learned, deterministically, from a small
//! built-in English text, followed by the ChatML special tokens.
//!
//! Layout of the vocabulary (token id order):
//! 1. the 256 byte tokens, id = byte value, each spelled with GPT-2's byte-to-unicode mapping
//!    (printable Latin-1 bytes stand for themselves, the others map to U+0100 onwards, so a
//!    space is `Ġ` and a newline `Ċ`);
//! 2. one token per distinct merge result, in merge order;
//! 3. `<|endoftext|>` (BOS), `<|im_start|>`, `<|im_end|>` (EOS), typed CONTROL.
//!
//! The merges are llama.cpp's `tokenizer.ggml.merges` strings, `"left right"` in rank order, as
//! `llama-vocab.cpp` reads them (split at the first space after position 0).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// The BOS token text (GPT-2's end-of-text marker).
pub(crate) const BOS_TEXT: &str = "<|endoftext|>";
/// The ChatML message opener.
pub(crate) const IM_START_TEXT: &str = "<|im_start|>";
/// The ChatML message closer, also the EOS token.
pub(crate) const IM_END_TEXT: &str = "<|im_end|>";

/// The template every test model carries: ChatML (every message as
/// `<|im_start|>{role}\n{content}<|im_end|>\n`, then `<|im_start|>assistant\n` when
/// `add_generation_prompt` is set) when no tools are involved, plus Hermes-style tool calling as Qwen 2.5 and Hermes 2 Pro models do it: the
/// request's `tools` listed in a system turn inside `<tools></tools>`, an assistant's calls as
/// `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>` blocks, and tool results as user
/// turns inside `<tool_response></tool_response>`. Written for chorus (not copied from a model).
pub(crate) const TOOLS_CHATML_TEMPLATE: &str = r#"
{%- if tools -%}
{{- '<|im_start|>system\n' -}}
{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\n\n' -}}{%- endif -%}
{{- '# Tools\n\nYou may call one or more functions. Their signatures are within <tools></tools>:\n<tools>' -}}
{%- for tool in tools -%}{{- '\n' + (tool | tojson) -}}{%- endfor -%}
{{- '\n</tools>\n\nTo call a function, answer with:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- if tools and loop.first and message['role'] == 'system' -%}
{%- elif message['role'] == 'assistant' and message['tool_calls'] -%}
{{- '<|im_start|>assistant\n' -}}
{%- if message['content'] -%}{{- message['content'] + '\n' -}}{%- endif -%}
{%- for call in message['tool_calls'] -%}
{%- if not loop.first -%}{{- '\n' -}}{%- endif -%}
{{- '<tool_call>\n{"name": "' + call['function']['name'] + '", "arguments": ' + (call['function']['arguments'] | tojson) + '}\n</tool_call>' -}}
{%- endfor -%}
{{- '<|im_end|>\n' -}}
{%- elif message['role'] == 'tool' -%}
{{- '<|im_start|>user\n<tool_response>\n' + message['content'] + '\n</tool_response><|im_end|>\n' -}}
{%- else -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"#;

/// llama.cpp's `LLAMA_TOKEN_TYPE_NORMAL`.
const TOKEN_TYPE_NORMAL: i32 = 1;
/// llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`.
const TOKEN_TYPE_CONTROL: i32 = 3;

/// The most merges learned; training stops earlier when no pair occurs twice.
const MAX_MERGES: usize = 600;

/// The training text for the merges: plain English prose written for this crate, with the
/// words a chat test is likely to use.
const TRAINING_TEXT: &str = "\
Hello world, the cat sat on the mat and looked at the garden. The sun was shining and the birds were singing in the trees. \
The children were playing in the park, running and jumping and laughing with their friends. \
When the evening came, the family gathered around the table for dinner. They were talking about the day, \
sharing the stories of everything that had happened in the morning and in the afternoon. \
The mother was cooking a meal of bread and soup, and the father was reading the newspaper in the kitchen. \
There is nothing better than a quiet evening at home with the people that you love.\n\
\n\
The assistant is a helpful model. The user asks a question and the assistant gives an answer. \
What is the capital of France? The capital of France is Paris. What is the weather like today? \
It is sunny and warm, with a light wind from the west. Can you help me with something? \
Yes, I can help you with that. Please tell me what you are looking for, and I will do my best to find it. \
Thank you for asking. I hope this is helpful, and I am happy to answer any other questions that you have.\n\
\n\
Learning a new language is interesting and rewarding. At the beginning, everything seems difficult: \
the words are strange, the sounds are unfamiliar, and the grammar is confusing. \
But with practice and patience, understanding grows. Reading books, listening to music, \
watching films and speaking with other people are all good ways of learning. \
Remembering the words becomes easier when they are used in real conversations. \
The most important thing is to keep going and to enjoy the process of discovering something new.\n\
\n\
In the morning the town was waking up. The shops were opening their doors, the baker was selling fresh bread, \
and the streets were filling with people going to work. A dog was barking at the corner, \
and a small boy was waiting for the bus with his mother. The weather was changing: \
clouds were moving in from the sea and the wind was getting stronger. \
By the afternoon it was raining, and everyone was hurrying home under their umbrellas. \
The rain continued through the night, and the sound of it on the roof was calming and peaceful.\n\
\n\
Computers are machines that follow instructions. A program is a list of instructions written in a language \
that the computer understands. Programming is the work of writing, testing and improving these programs. \
Good programs are clear and simple, and they do exactly what they are meant to do. \
Testing is an important part of programming, because it shows whether the program is working as expected. \
When something goes wrong, the programmer reads the error message, finds the problem and fixes it. \
This is how software is built: step by step, one small improvement after another.\n\
\n\
The story of the little house on the hill is an old one. The house was built long ago by a farmer and his wife. \
They were living there for many years, working in the fields, growing vegetables and keeping animals. \
Their children were born in the house, and their grandchildren were playing in the same rooms. \
Today the house is still standing, and the people living in it are still telling the story of the farmer \
and the wife who were building their home with their own hands. It is a story about working together, \
about caring for each other and about finding happiness in simple things.\n\
\n\
\"Where are you going?\" asked the teacher. \"To the library,\" answered the student, \"to find the book about the history of the town.\" \
\"Is it the old book with the red cover?\" \"Yes, the one with the map of the river (the map is the best part).\" \
The teacher was smiling, because the student was reading more than the others in the class, and reading is the key to learning.\n\
\n\
A list of things to remember:\n\
the keys are on the table by the door,\n\
the letters are waiting for an answer,\n\
the plants in the kitchen need water,\n\
the meeting with the others is in the evening,\n\
and the tickets for the train are in the drawer.\n\
\n\
My brother and my father were walking together along the river, talking about the weather and whether it was \
going to rain. Another man was fishing on the other side, and his dog was sleeping in the grass next to him. \
They were gathering wood for the fire, and the smell of the smoke was rising into the evening air. \
After a while, they were sitting by the fire and listening to the water, thinking about nothing and everything. \
It was the kind of evening that you remember for a long time, the kind that makes you feel that the world is good.\n\
\n\
Writing a good answer means thinking about the question first. What does the person want to know? \
Which details are important, and which are not? A good answer is short when the question is simple, \
and longer when the question needs an explanation. It is always better to say that you do not know \
than to give an answer that is wrong. Being honest, being kind and being useful: these are the rules of a good assistant.\n\
\n\
Numbers are everywhere: 1, 2, 3, 10, 100, 2024, 3.14. One and one are two, and two and two are four. \
Questions and answers, words and sentences, thinking and writing: these are the things that language models learn. \
Thank you, and have a good day!\n";

/// A complete tokenizer, ready for the GGUF `tokenizer.ggml.*` keys.
#[derive(Debug, Clone)]
pub(crate) struct Vocab {
    /// Token texts (`tokenizer.ggml.tokens`), indexed by token id.
    pub(crate) tokens: Vec<String>,
    /// llama.cpp token types (`tokenizer.ggml.token_type`), parallel to `tokens`.
    pub(crate) token_types: Vec<i32>,
    /// BPE merges in rank order (`tokenizer.ggml.merges`), each `"left right"`.
    pub(crate) merges: Vec<String>,
    /// Id of `<|endoftext|>`.
    pub(crate) bos_id: u32,
    /// Id of `<|im_end|>`.
    pub(crate) eos_id: u32,
}

/// GPT-2's byte-to-unicode table: printable bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) map to the
/// same code point, the other 68 bytes to U+0100, U+0101, ... in byte order.
pub(crate) fn byte_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next_extra = 0x100_u32;
    for (byte, slot) in (0_u8..=255).zip(table.iter_mut()) {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        *slot = if printable {
            char::from(byte)
        } else {
            let c = char::from_u32(next_extra).unwrap_or(char::REPLACEMENT_CHARACTER);
            next_extra += 1;
            c
        };
    }
    table
}

/// The vocabulary, built on first use and kept for the life of the process.
pub(crate) fn get() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(build)
}

/// Builds the vocabulary. Deterministic: the same build of this crate always returns the same
/// tokens, types and merges.
pub(crate) fn build() -> Vocab {
    let table = byte_to_unicode();
    let mut tokens: Vec<String> = table.iter().map(char::to_string).collect();
    let mut token_ids: HashMap<String, u32> =
        tokens.iter().enumerate().map(|(id, text)| (text.clone(), id_u32(id))).collect();

    // Each distinct pre-token of the training text, as byte-token ids, with its count.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for word in pre_tokenize(TRAINING_TEXT) {
        *counts.entry(word).or_insert(0) += 1;
    }
    let mut words: Vec<(Vec<u32>, usize)> =
        counts.into_iter().map(|(word, count)| (word.bytes().map(u32::from).collect(), count)).collect();

    let mut merges = Vec::new();
    while merges.len() < MAX_MERGES {
        let Some((left, right)) = most_frequent_pair(&words) else {
            break;
        };
        let (left_text, right_text) = (&tokens[left as usize], &tokens[right as usize]);
        merges.push(format!("{left_text} {right_text}"));
        let merged_text = format!("{left_text}{right_text}");
        let merged = match token_ids.get(&merged_text) {
            Some(&id) => id,
            None => {
                let id = id_u32(tokens.len());
                tokens.push(merged_text.clone());
                token_ids.insert(merged_text, id);
                id
            }
        };
        for (symbols, _) in &mut words {
            merge_pair(symbols, left, right, merged);
        }
    }

    let mut token_types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
    let bos_id = id_u32(tokens.len());
    for special in [BOS_TEXT, IM_START_TEXT, IM_END_TEXT] {
        tokens.push(special.to_owned());
        token_types.push(TOKEN_TYPE_CONTROL);
    }
    let eos_id = id_u32(tokens.len() - 1);
    Vocab { tokens, token_types, merges, bos_id, eos_id }
}

/// A token id as `u32`; vocabularies here stay far below `u32::MAX` entries.
fn id_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// The pair of adjacent symbols with the highest total count, ties going to the smallest
/// `(left, right)` ids; `None` when no pair occurs at least twice.
fn most_frequent_pair(words: &[(Vec<u32>, usize)]) -> Option<(u32, u32)> {
    let mut pair_counts: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for (symbols, count) in words {
        for pair in symbols.windows(2) {
            *pair_counts.entry((pair[0], pair[1])).or_insert(0) += count;
        }
    }
    let mut best: Option<((u32, u32), usize)> = None;
    for (pair, count) in pair_counts {
        if best.is_none_or(|(_, best_count)| count > best_count) {
            best = Some((pair, count));
        }
    }
    best.filter(|&(_, count)| count >= 2).map(|(pair, _)| pair)
}

/// Replaces every non-overlapping `left right` in `symbols`, left to right, by `merged`.
fn merge_pair(symbols: &mut Vec<u32>, left: u32, right: u32, merged: u32) {
    let mut out = Vec::with_capacity(symbols.len());
    let mut i = 0;
    while i < symbols.len() {
        if i + 1 < symbols.len() && symbols[i] == left && symbols[i + 1] == right {
            out.push(merged);
            i += 2;
        } else {
            out.push(symbols[i]);
            i += 1;
        }
    }
    *symbols = out;
}

/// Character classes of the GPT-2 pre-tokenizer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Number
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Splits text the way GPT-2's pre-tokenizer regex does (`' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
/// \s+(?!\S)|\s+'`, without the English contractions): runs of one class, a single leading space
/// attached to the run after it. Merges are learned inside these pieces only, as llama.cpp
/// applies them inside its pre-tokens.
fn pre_tokenize(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(pos, _)| pos);
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let next_is_word = |j: usize| chars.get(j).is_some_and(|&(_, c)| class(c) != Class::Space);
        if chars[i].1 == ' ' && next_is_word(i + 1) {
            i += 1;
        }
        let run_class = class(chars[i].1);
        if run_class == Class::Space {
            // A whitespace run leaves its last space to the word that follows it.
            while i < chars.len() && class(chars[i].1) == Class::Space {
                if i > start && chars[i].1 == ' ' && next_is_word(i + 1) {
                    break;
                }
                i += 1;
            }
        } else {
            while i < chars.len() && class(chars[i].1) == run_class {
                i += 1;
            }
        }
        pieces.push(&text[byte_at(start)..byte_at(i)]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn byte_table_is_a_bijection_matching_gpt2() {
        let table = byte_to_unicode();
        let distinct: HashSet<char> = table.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(table[usize::from(b' ')], 'Ġ');
        assert_eq!(table[usize::from(b'\n')], 'Ċ');
        assert_eq!(table[usize::from(b'a')], 'a');
        assert_eq!(table[0], '\u{100}');
    }

    #[test]
    fn pre_tokenizer_attaches_one_leading_space() {
        assert_eq!(pre_tokenize("Hello world, the  cat\n"), vec!["Hello", " world", ",", " the", " ", " cat", "\n"]);
    }

    #[test]
    fn vocabulary_has_common_multi_byte_tokens() {
        let vocab = build();
        let texts: HashSet<&str> = vocab.tokens.iter().map(String::as_str).collect();
        for token in ["the", "Ġthe", "Ġand", "ing", "Ġwas"] {
            assert!(texts.contains(token), "missing token {token:?}");
        }
        assert!(vocab.merges.len() >= 400, "{} merges", vocab.merges.len());
        assert_eq!(vocab.tokens.len(), vocab.token_types.len());
        assert_eq!(vocab.tokens.len(), texts.len(), "token texts must be unique");
        assert_eq!(vocab.tokens[vocab.bos_id as usize], BOS_TEXT);
        assert_eq!(vocab.tokens[vocab.eos_id as usize], IM_END_TEXT);
        assert_eq!(vocab.token_types[vocab.eos_id as usize], TOKEN_TYPE_CONTROL);
    }

    #[test]
    fn every_merge_yields_a_token() {
        let vocab = build();
        let texts: HashSet<&str> = vocab.tokens.iter().map(String::as_str).collect();
        for merge in &vocab.merges {
            let (left, right) = merge.split_once(' ').unwrap_or((merge, ""));
            assert!(texts.contains(left) && texts.contains(right), "{merge:?}");
            assert!(texts.contains(format!("{left}{right}").as_str()), "{merge:?}");
        }
    }

    #[test]
    fn build_is_deterministic() {
        let (a, b) = (build(), build());
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.merges, b.merges);
    }
}
