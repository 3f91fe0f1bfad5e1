//! Reading, validating and writing Character Cards: the three containers of the specs (plain
//! JSON; a PNG image whose `ccv3` or `chara` tEXt chunk holds the base64 of the card's JSON;
//! CHARX, a zip with `card.json` at its root and the card's assets), V1 cards upgraded to V2,
//! and the checks that a card, and chorus's `data.extensions.chorus`, make sense, each error
//! naming the JSON path of the field at fault.
//!
//! Lossless: [`read_card`] keeps the card's JSON exactly as read ([`ImportedCard::raw`]) and the
//! original PNG or CHARX file; the writers ([`to_json`], [`to_png`], [`to_charx`]) write that JSON
//! back unchanged, so fields and `extensions` keys this crate does not know survive an import
//! and an export.
//!
//! Specs: Character Card V2 <https://github.com/malfoyslastname/character-card-spec-v2>,
//! V3 <https://github.com/kwaroran/character-card-spec-v3> (§"Embedding Methods" for the
//! containers).

use std::collections::HashSet;
use std::fmt;
use std::io::{Cursor, Read, Write};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chorus_proto::character::{CHORUS_EXTENSION, Card, ChorusExtension, SPEC_V2, SPEC_V3, VitalKind};
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

/// The PNG tEXt keyword of a V3 card.
pub const PNG_KEY_V3: &str = "ccv3";
/// The PNG tEXt keyword of a V2 (or V1) card.
pub const PNG_KEY_V2: &str = "chara";
/// The card's file inside a CHARX zip.
pub const CHARX_CARD: &str = "card.json";

/// The most bytes a card's JSON may have (in a PNG chunk or a CHARX's `card.json`).
const MAX_CARD_JSON: u64 = 32 << 20;
/// The most memory the PNG decoder may take for an image and its chunks.
const PNG_LIMIT: usize = 256 << 20;
/// The placeholder image of a card exported as PNG without an image of its own: 400x600, 2:3
/// as cards usually are, one colour (a few kilobytes once compressed).
const PLACEHOLDER: (u32, u32, [u8; 3]) = (400, 600, [0x4a, 0x55, 0x68]);
/// The most memory one compiled lorebook key regex may take.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The most memories one prompt may be given (`memory.top_k`).
const MAX_TOP_K: u32 = 50;

/// Why a card was refused.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The card's JSON is well formed but a field is wrong: `field` is its JSON path
    /// (`data.character_book.entries[2].keys`), `message` what is wrong with it.
    #[error("{field}: {message}")]
    Invalid {
        /// The JSON path of the field, `data.alternate_greetings[1]`.
        field: String,
        /// What is wrong, lower-case: `expected an array of strings, found string "x"`.
        message: String,
    },
    /// The bytes are no card: not JSON, a PNG without a `ccv3` or `chara` chunk, bad base64, a
    /// zip without `card.json`, an image that cannot be decoded or encoded.
    #[error("{0}")]
    Format(String),
}

impl CardError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CardError::Invalid { field: field.into(), message: message.into() }
    }
}

/// A card's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardFormat {
    /// The card's JSON, as is.
    Json,
    /// A PNG image with the card's JSON, base64, in a `ccv3` (V3) or `chara` (V2) tEXt chunk.
    Png,
    /// A zip with `card.json` at its root and the card's assets (V3 §"CHARX").
    Charx,
}

impl CardFormat {
    /// Every format, in the order `--format` lists them.
    pub const ALL: [CardFormat; 3] = [CardFormat::Json, CardFormat::Png, CardFormat::Charx];

    /// `json`, `png` or `charx` (ASCII case ignored); `None` for anything else.
    pub fn parse(name: &str) -> Option<CardFormat> {
        CardFormat::ALL.into_iter().find(|f| f.extension().eq_ignore_ascii_case(name))
    }

    /// The file extension, without the dot, which is also the format's name: `json`, `png`,
    /// `charx`.
    pub fn extension(self) -> &'static str {
        match self {
            CardFormat::Json => "json",
            CardFormat::Png => "png",
            CardFormat::Charx => "charx",
        }
    }

    /// The container of `bytes`, from their first bytes: the PNG signature, a zip's local file
    /// header (`PK\x03\x04`, or the end record of an empty zip), else JSON.
    pub fn sniff(bytes: &[u8]) -> CardFormat {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            CardFormat::Png
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            CardFormat::Charx
        } else {
            CardFormat::Json
        }
    }
}

impl fmt::Display for CardFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// A card read from a file: validated, with its JSON as read and, for a PNG or a CHARX, the
/// file itself, which an export reuses (the image, the assets).
#[derive(Debug, Clone)]
pub struct ImportedCard {
    /// The typed card.
    pub card: Card,
    /// The card's JSON exactly as read (for a V1 card, the V2 card it was upgraded to): what
    /// exports write back.
    pub raw: Value,
    /// The container it came in.
    pub format: CardFormat,
    /// The PNG or CHARX file, kept so an export can reuse its image or assets; `None` for JSON.
    pub original: Option<Vec<u8>>,
}

/// Reads a card from a file's bytes, whatever its container ([`CardFormat::sniff`]), and
/// validates it ([`validate`]).
///
/// - PNG: the `ccv3` chunk when there is one (V3 says to prefer it), else `chara`; tEXt, zTXt
///   and iTXt chunks, before or after the image data, are all looked at. The value is the
///   base64 of the UTF-8 JSON (padding optional; a chunk holding bare JSON is taken too).
/// - CHARX: `card.json` at the root of the zip.
/// - JSON: the bytes (a UTF-8 byte order mark is skipped).
///
/// A V1 card (no `spec`; `name`, `description`, `personality`, `scenario`, `first_mes`,
/// `mes_example` at the top level) is upgraded to V2 first ([`upgrade_v1`]); `raw` is then the
/// V2 card.
///
/// # Errors
///
/// [`CardError::Format`] when the bytes hold no card JSON, [`CardError::Invalid`] when the card
/// is wrong.
pub fn read_card(bytes: &[u8]) -> Result<ImportedCard, CardError> {
    let format = CardFormat::sniff(bytes);
    let json = match format {
        CardFormat::Json => bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes).to_vec(),
        CardFormat::Png => png_card_json(bytes)?,
        CardFormat::Charx => charx_card_json(bytes)?,
    };
    let raw: Value = serde_json::from_slice(&json).map_err(|e| match format {
        CardFormat::Json => CardError::Format(format!(
            "not a character card: expected the card's JSON, a PNG image or a CHARX (zip) file ({e})"
        )),
        other => CardError::Format(format!("the card in the {other} file is not JSON: {e}")),
    })?;
    let raw = upgrade_v1(raw);
    let card = validate(&raw)?;
    let original = (format != CardFormat::Json).then(|| bytes.to_vec());
    Ok(ImportedCard { card, raw, format, original })
}

/// The V1 fields, moved under `data` by [`upgrade_v1`].
const V1_FIELDS: [&str; 6] = ["name", "description", "personality", "scenario", "first_mes", "mes_example"];
/// The V2 `data` fields a V1-style card may also carry at its top level; moved too.
const V2_DATA_FIELDS: [&str; 8] = [
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "alternate_greetings",
    "tags",
    "creator",
    "character_version",
    "extensions",
];

/// Whether `raw` is a V1 card: an object with no `spec` and no `data`, and a `name`.
pub fn is_v1(raw: &Value) -> bool {
    raw.as_object().is_some_and(|o| !o.contains_key("spec") && !o.contains_key("data") && o.contains_key("name"))
}

/// Upgrades a V1 card (V2 spec §"Character Card V1": flat `name`, `description`, `personality`,
/// `scenario`, `first_mes`, `mes_example`) to V2: `spec: chara_card_v2`, `spec_version: 2.0`,
/// those fields (and any V2 `data` field found at the top level, such as `tags`) moved into
/// `data`, the other V2 fields set to their empty values, and every other top-level key kept
/// where it was. Anything that is not a V1 card ([`is_v1`]) is returned unchanged.
pub fn upgrade_v1(raw: Value) -> Value {
    if !is_v1(&raw) {
        return raw;
    }
    let Value::Object(mut top) = raw else { return raw };
    let mut data = Map::new();
    for key in V1_FIELDS {
        data.insert(key.to_owned(), top.shift_remove(key).unwrap_or_else(|| Value::String(String::new())));
    }
    for key in V2_DATA_FIELDS {
        let empty = match key {
            "alternate_greetings" | "tags" => Value::Array(Vec::new()),
            "extensions" => Value::Object(Map::new()),
            _ => Value::String(String::new()),
        };
        data.insert(key.to_owned(), top.shift_remove(key).unwrap_or(empty));
    }
    let mut card = Map::new();
    card.insert("spec".to_owned(), Value::String(SPEC_V2.to_owned()));
    card.insert("spec_version".to_owned(), Value::String("2.0".to_owned()));
    card.insert("data".to_owned(), Value::Object(data));
    card.extend(top);
    Value::Object(card)
}

/// Checks a card's JSON and returns the typed card.
///
/// First the shape, field by field (a type error names the JSON path:
/// `data.alternate_greetings[1]: expected a string, found integer 3`), then what the types
/// cannot say:
///
/// - `spec` is `chara_card_v2` or `chara_card_v3`; `spec_version` is `2.0` for V2 and starts
///   with `3.` for V3;
/// - `data.name` is not blank;
/// - a lorebook entry's `position`, when present, is `before_char` or `after_char`; with
///   `use_regex` every key compiles ([`key_regex`]);
/// - `data.extensions.chorus`, when present, is a [`ChorusExtension`] whose vitals have unique
///   names of letters, digits and `_` (not starting with a digit); numbers with finite
///   `min < max`, `min <= default <= max`, decays finite and `>= 0`; enums with non-blank,
///   unique values and a default among them; memory with `top_k <= 50` and `merge_threshold`
///   and `recency_decay` in (0, 1].
///
/// # Errors
///
/// [`CardError::Invalid`] naming the first field at fault.
pub fn validate(raw: &Value) -> Result<Card, CardError> {
    let Some(top) = raw.as_object() else {
        return Err(CardError::invalid("card", format!("expected a JSON object, found {}", kind(raw))));
    };
    let version = match top.get("spec") {
        None => return Err(CardError::invalid("spec", format!("is required ({SPEC_V2} or {SPEC_V3})"))),
        Some(Value::String(s)) if s == SPEC_V2 || s == SPEC_V3 => s.as_str(),
        Some(other) => {
            return Err(CardError::invalid("spec", format!("expected {SPEC_V2} or {SPEC_V3}, found {}", kind(other))));
        }
    };
    let card: Card = serde_path_to_error::deserialize(raw).map_err(|e| path_error(e, ""))?;
    match version {
        SPEC_V2 if card.spec_version != "2.0" => {
            return Err(CardError::invalid(
                "spec_version",
                format!("expected 2.0 for {SPEC_V2}, found {:?}", card.spec_version),
            ));
        }
        SPEC_V3 if !card.spec_version.starts_with("3.") => {
            return Err(CardError::invalid(
                "spec_version",
                format!("expected 3.0 (or another 3.x) for {SPEC_V3}, found {:?}", card.spec_version),
            ));
        }
        _ => {}
    }
    if card.data.name.trim().is_empty() {
        return Err(CardError::invalid("data.name", "must not be blank"));
    }
    if let Some(book) = &card.data.character_book {
        for (i, entry) in book.entries.iter().enumerate() {
            let at = format!("data.character_book.entries[{i}]");
            if let Some(position) = &entry.position
                && position != "before_char"
                && position != "after_char"
            {
                return Err(CardError::invalid(
                    format!("{at}.position"),
                    format!("expected before_char or after_char, found {position:?}"),
                ));
            }
            if entry.use_regex == Some(true) {
                for (j, key) in entry.keys.iter().enumerate() {
                    key_regex(key, entry.case_sensitive.unwrap_or(false)).map_err(|e| {
                        CardError::invalid(format!("{at}.keys[{j}]"), format!("not a valid regular expression: {e}"))
                    })?;
                }
            }
        }
    }
    if let Some(ext) = card.data.extensions.get(CHORUS_EXTENSION) {
        let ext: ChorusExtension =
            serde_path_to_error::deserialize(ext).map_err(|e| path_error(e, "data.extensions.chorus"))?;
        check_extension(&ext)?;
    }
    Ok(card)
}

/// chorus's additions to `card` (`data.extensions.chorus`); the defaults when it has none.
/// A card that passed [`validate`] always has a readable one.
pub fn chorus_extension(card: &Card) -> ChorusExtension {
    card.data.extensions.get(CHORUS_EXTENSION).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

/// Compiles a lorebook key of a `use_regex` entry. A key written as JavaScript writes a regex
/// literal, `/pattern/flags` (as SillyTavern's lorebooks do), is `pattern` with its flags: `i`
/// case-insensitive, `m` multi-line, `s` `.` matches newlines, `u` (always on) and `g`, `y`
/// ignored; any other key is the pattern itself. Without an `i` flag, the match is
/// case-insensitive unless `case_sensitive` (the entry's `case_sensitive`).
///
/// # Errors
///
/// The regex crate's syntax error (its last line, `unclosed group`), or a pattern too large.
pub fn key_regex(key: &str, case_sensitive: bool) -> Result<Regex, String> {
    let (pattern, flags) = js_regex_literal(key).unwrap_or((key, ""));
    let mut builder = RegexBuilder::new(pattern);
    builder.case_insensitive(!case_sensitive || flags.contains('i')).size_limit(REGEX_SIZE_LIMIT);
    if flags.contains('m') {
        builder.multi_line(true);
    }
    if flags.contains('s') {
        builder.dot_matches_new_line(true);
    }
    builder.build().map_err(|e| match e {
        regex::Error::Syntax(text) => {
            text.lines().rev().find_map(|l| l.strip_prefix("error: ")).unwrap_or(text.trim()).to_owned()
        }
        other => other.to_string(),
    })
}

/// `/pattern/flags` → `(pattern, flags)`, when the key is one (flags among `imsugy`).
fn js_regex_literal(key: &str) -> Option<(&str, &str)> {
    let body = key.strip_prefix('/')?;
    let end = body.rfind('/')?;
    let (pattern, flags) = (&body[..end], &body[end + 1..]);
    (!pattern.is_empty() && flags.chars().all(|c| "imsugy".contains(c))).then_some((pattern, flags))
}

/// A type error of `serde_path_to_error`, as the JSON path under `prefix` and our message.
fn path_error(e: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> CardError {
    use serde_path_to_error::Segment;
    let mut path = prefix.to_owned();
    for segment in e.path() {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    type_error(path, &e.into_inner().to_string())
}

/// The fields that are arrays of strings, for a clearer message than serde's "a sequence".
const STRING_LISTS: [&str; 6] =
    ["keys", "secondary_keys", "alternate_greetings", "tags", "group_only_greetings", "source"];

/// serde's message, as a field and a message of ours.
fn type_error(path: String, message: &str) -> CardError {
    let join = |field: &str| if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") };
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(field) = rest.strip_suffix('`')
    {
        return CardError::invalid(join(field), "is required");
    }
    let path = if path.is_empty() { "card".to_owned() } else { path };
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let last = path.rsplit('.').next().unwrap_or(&path);
        let expected = match expected {
            "a sequence" if STRING_LISTS.contains(&last) => "an array of strings",
            "a sequence" => "an array",
            "a map" => "an object",
            e if e.starts_with("struct ") || e.starts_with("internally tagged enum") => "an object",
            "u32" | "u64" => "a non-negative integer",
            "i64" | "i32" => "an integer",
            "f64" | "f32" => "a number",
            other => other,
        };
        return CardError::invalid(path, format!("expected {expected}, found {}", found.replace('`', "")));
    }
    CardError::invalid(path, message.replace('`', ""))
}

/// What a JSON value is, for messages: `string "x"`, `integer 3`, `an array`.
fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The checks on `data.extensions.chorus` that its types cannot make.
fn check_extension(ext: &ChorusExtension) -> Result<(), CardError> {
    const AT: &str = "data.extensions.chorus";
    let mut names = HashSet::new();
    for (i, vital) in ext.vitals.iter().enumerate() {
        let at = format!("{AT}.vitals[{i}]");
        if !is_identifier(&vital.name) {
            return Err(CardError::invalid(
                format!("{at}.name"),
                format!("{:?} is not a name: use letters, digits and _, not starting with a digit", vital.name),
            ));
        }
        if !names.insert(vital.name.as_str()) {
            return Err(CardError::invalid(format!("{at}.name"), format!("{:?} is used by another vital", vital.name)));
        }
        match &vital.kind {
            VitalKind::Number { min, max, default, decay_per_turn, decay_per_hour } => {
                for (field, value) in [("min", min), ("max", max), ("default", default)] {
                    if !value.is_finite() {
                        return Err(CardError::invalid(format!("{at}.{field}"), "must be a finite number"));
                    }
                }
                if min >= max {
                    return Err(CardError::invalid(
                        format!("{at}.max"),
                        format!("must be greater than min ({min}), found {max}"),
                    ));
                }
                if default < min || default > max {
                    return Err(CardError::invalid(
                        format!("{at}.default"),
                        format!("{default} is outside [{min}, {max}]"),
                    ));
                }
                for (field, value) in [("decay_per_turn", decay_per_turn), ("decay_per_hour", decay_per_hour)] {
                    if !value.is_finite() || *value < 0.0 {
                        return Err(CardError::invalid(
                            format!("{at}.{field}"),
                            format!("must be a finite number >= 0, found {value}"),
                        ));
                    }
                }
            }
            VitalKind::Enum { values, default } => {
                if values.is_empty() {
                    return Err(CardError::invalid(format!("{at}.values"), "must not be empty"));
                }
                let mut seen = HashSet::new();
                for (j, value) in values.iter().enumerate() {
                    if value.trim().is_empty() {
                        return Err(CardError::invalid(format!("{at}.values[{j}]"), "must not be blank"));
                    }
                    if !seen.insert(value.as_str()) {
                        return Err(CardError::invalid(
                            format!("{at}.values[{j}]"),
                            format!("{value:?} is listed twice"),
                        ));
                    }
                }
                if !values.contains(default) {
                    return Err(CardError::invalid(
                        format!("{at}.default"),
                        format!("{default:?} is not one of the values ({})", values.join(", ")),
                    ));
                }
            }
        }
    }
    let memory = &ext.memory;
    if memory.top_k > MAX_TOP_K {
        return Err(CardError::invalid(
            format!("{AT}.memory.top_k"),
            format!("must be at most {MAX_TOP_K}, found {}", memory.top_k),
        ));
    }
    for (field, value) in [("merge_threshold", memory.merge_threshold), ("recency_decay", memory.recency_decay)] {
        if !(value > 0.0 && value <= 1.0) {
            return Err(CardError::invalid(
                format!("{AT}.memory.{field}"),
                format!("must be in (0, 1], found {value}"),
            ));
        }
    }
    Ok(())
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The card's JSON, pretty-printed: the JSON export.
pub fn to_json(raw: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(raw).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// A PNG holding the card: the image of `original_png` (its pixels decoded and encoded again,
/// with its palette, transparency, colour space and text chunks, less any old `chara` and `ccv3`
/// chunks; an animated PNG keeps its first frame only), or, without one, a 400x600 placeholder
/// of one colour; plus a tEXt chunk with the base64 of the card's JSON, `ccv3` when
/// `card_spec` is `chara_card_v3`, else `chara`.
///
/// # Errors
///
/// [`CardError::Format`] when `original_png` cannot be decoded, or the image not encoded.
pub fn to_png(raw: &Value, card_spec: &str, original_png: Option<&[u8]>) -> Result<Vec<u8>, CardError> {
    let keyword = if card_spec == SPEC_V3 { PNG_KEY_V3 } else { PNG_KEY_V2 };
    let json = serde_json::to_vec(raw).map_err(|e| CardError::Format(format!("cannot write the card's JSON: {e}")))?;
    let text = base64::engine::general_purpose::STANDARD.encode(json);
    let (mut info, pixels) = match original_png {
        Some(png) => decode_png(png)?,
        None => placeholder(),
    };
    info.uncompressed_latin1_text.push(png::text_metadata::TEXtChunk::new(keyword, text));
    let mut out = Vec::new();
    let encoded =
        png::Encoder::with_info(&mut out, info).and_then(png::Encoder::write_header).and_then(|mut writer| {
            writer.write_image_data(&pixels)?;
            writer.finish()
        });
    encoded.map_err(|e| CardError::Format(format!("cannot encode the PNG: {e}")))?;
    Ok(out)
}

/// The header to encode `png` again with (no card chunks, no animation) and its pixels.
fn decode_png(png: &[u8]) -> Result<(png::Info<'static>, Vec<u8>), CardError> {
    let bad = |e: png::DecodingError| CardError::Format(format!("cannot decode the card's PNG image: {e}"));
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(png), png::Limits { bytes: PNG_LIMIT });
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader.output_buffer_size().ok_or_else(|| CardError::Format("the PNG image is too large".to_owned()))?;
    let mut pixels = vec![0; size];
    let frame = reader.next_frame(&mut pixels).map_err(bad)?;
    pixels.truncate(frame.buffer_size());
    // The rest of the file: text chunks after the image data (where SillyTavern puts `chara`).
    reader.finish().map_err(bad)?;
    let old = reader.info();
    let mut info = png::Info::with_size(frame.width, frame.height);
    info.color_type = frame.color_type;
    info.bit_depth = frame.bit_depth;
    info.palette.clone_from(&old.palette);
    info.trns.clone_from(&old.trns);
    info.pixel_dims = old.pixel_dims;
    info.srgb = old.srgb;
    info.source_gamma = old.source_gamma;
    info.source_chromaticities = old.source_chromaticities;
    info.icc_profile.clone_from(&old.icc_profile);
    info.exif_metadata.clone_from(&old.exif_metadata);
    let card_chunk = |k: &str| k == PNG_KEY_V2 || k == PNG_KEY_V3;
    info.uncompressed_latin1_text =
        old.uncompressed_latin1_text.iter().filter(|t| !card_chunk(&t.keyword)).cloned().collect();
    info.compressed_latin1_text =
        old.compressed_latin1_text.iter().filter(|t| !card_chunk(&t.keyword)).cloned().collect();
    info.utf8_text = old.utf8_text.iter().filter(|t| !card_chunk(&t.keyword)).cloned().collect();
    Ok((info, pixels))
}

/// The header and pixels of the placeholder image.
fn placeholder() -> (png::Info<'static>, Vec<u8>) {
    let (width, height, rgb) = PLACEHOLDER;
    let mut info = png::Info::with_size(width, height);
    info.color_type = png::ColorType::Rgb;
    info.bit_depth = png::BitDepth::Eight;
    let pixels = rgb.repeat(width as usize * height as usize);
    (info, pixels)
}

/// A CHARX zip holding the card: `card.json` (the card's JSON, pretty-printed) and, from
/// `original_charx`, every other entry copied unchanged (still compressed, with its metadata).
///
/// # Errors
///
/// [`CardError::Format`] when `original_charx` is not a readable zip, or the zip not written.
pub fn to_charx(raw: &Value, original_charx: Option<&[u8]>) -> Result<Vec<u8>, CardError> {
    let bad = |e: zip::result::ZipError| CardError::Format(format!("cannot write the CHARX file: {e}"));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(CHARX_CARD, options).map_err(bad)?;
    zip.write_all(&to_json(raw)).map_err(|e| CardError::Format(format!("cannot write the CHARX file: {e}")))?;
    if let Some(original) = original_charx {
        let mut archive = zip::ZipArchive::new(Cursor::new(original))
            .map_err(|e| CardError::Format(format!("the original CHARX file is not a readable zip: {e}")))?;
        for i in 0..archive.len() {
            let entry = archive.by_index_raw(i).map_err(bad)?;
            if entry.name().ok().as_deref() == Some(CHARX_CARD) {
                continue;
            }
            zip.raw_copy_file(entry).map_err(bad)?;
        }
    }
    Ok(zip.finish().map_err(bad)?.into_inner())
}

/// The base64 engine for card chunks: standard alphabet, padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The card's JSON bytes from a PNG's `ccv3` (preferred) or `chara` chunk.
fn png_card_json(bytes: &[u8]) -> Result<Vec<u8>, CardError> {
    let bad = |e: png::DecodingError| CardError::Format(format!("not a readable PNG image: {e}"));
    let decoder = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: PNG_LIMIT });
    let mut reader = decoder.read_info().map_err(bad)?;
    // Skips the image data and reads the chunks after it too.
    reader.finish().map_err(bad)?;
    let info = reader.info();
    let text = |key: &str| -> Result<Option<String>, CardError> {
        let chunk_error =
            |e: png::DecodingError| CardError::Format(format!("the PNG's {key} chunk cannot be read: {e}"));
        if let Some(t) = info.uncompressed_latin1_text.iter().find(|t| t.keyword == key) {
            return Ok(Some(t.text.clone()));
        }
        if let Some(t) = info.compressed_latin1_text.iter().find(|t| t.keyword == key) {
            let mut t = t.clone();
            t.decompress_text_with_limit(MAX_CARD_JSON as usize).map_err(chunk_error)?;
            return t.get_text().map(Some).map_err(chunk_error);
        }
        if let Some(t) = info.utf8_text.iter().find(|t| t.keyword == key) {
            let mut t = t.clone();
            t.decompress_text_with_limit(MAX_CARD_JSON as usize).map_err(chunk_error)?;
            return t.get_text().map(Some).map_err(chunk_error);
        }
        Ok(None)
    };
    let (key, value) = match text(PNG_KEY_V3)? {
        Some(value) => (PNG_KEY_V3, value),
        None => match text(PNG_KEY_V2)? {
            Some(value) => (PNG_KEY_V2, value),
            None => {
                return Err(CardError::Format(
                    "the PNG image holds no character card: it has no ccv3 or chara text chunk".to_owned(),
                ));
            }
        },
    };
    let value = value.trim();
    if value.starts_with('{') {
        // Bare JSON, as some old tools wrote: a tEXt chunk's bytes were read as Latin-1, so a
        // UTF-8 card is its chars as bytes again.
        let bytes: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(c).ok()).collect();
        return Ok(bytes.filter(|b| std::str::from_utf8(b).is_ok()).unwrap_or_else(|| value.as_bytes().to_vec()));
    }
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT_BASE64.decode(compact).map_err(|e| CardError::Format(format!("the PNG's {key} chunk is not base64: {e}")))
}

/// The bytes of `card.json` at the root of a CHARX zip.
fn charx_card_json(bytes: &[u8]) -> Result<Vec<u8>, CardError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| CardError::Format(format!("not a readable CHARX (zip) file: {e}")))?;
    let file = archive.by_name(CHARX_CARD).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => {
            CardError::Format(format!("the CHARX (zip) file has no {CHARX_CARD} at its root"))
        }
        other => CardError::Format(format!("cannot read {CHARX_CARD} in the CHARX file: {other}")),
    })?;
    let mut json = Vec::new();
    file.take(MAX_CARD_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| CardError::Format(format!("cannot read {CHARX_CARD} in the CHARX file: {e}")))?;
    if json.len() as u64 > MAX_CARD_JSON {
        return Err(CardError::Format(format!("{CHARX_CARD} is larger than {} MiB", MAX_CARD_JSON >> 20)));
    }
    Ok(json.strip_prefix(b"\xef\xbb\xbf").map(<[u8]>::to_vec).unwrap_or(json))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    const ARIA: &str = include_str!("../../tests/data/characters/aria.v3.json");
    const BRAM: &str = include_str!("../../tests/data/characters/bram.v2.json");

    fn value(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// A fixture with unknown keys at the top level, in `data` and in `data.extensions`.
    fn with_unknown_keys(text: &str) -> Value {
        let mut raw = value(text);
        raw["x_top_level"] = json!({"kept": [1, 2.5, "three"]});
        raw["data"]["x_data_field"] = json!("kept too");
        raw["data"]["extensions"]["x_frontend"] = json!({"nested": {"deep": true}});
        raw
    }

    fn invalid(raw: &Value) -> (String, String) {
        match validate(raw) {
            Err(CardError::Invalid { field, message }) => (field, message),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// The text chunks of a PNG, by keyword.
    fn png_texts(png: &[u8]) -> Vec<(String, String)> {
        let mut reader = png::Decoder::new(Cursor::new(png)).read_info().unwrap();
        reader.finish().unwrap();
        reader.info().uncompressed_latin1_text.iter().map(|t| (t.keyword.clone(), t.text.clone())).collect()
    }

    /// A 2x1 RGBA PNG with `texts` as tEXt chunks, before the image data or after it.
    fn png_with(texts: &[(&str, &str)], after_data: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, 2, 1);
        encoder.set_color(png::ColorType::Rgba);
        if !after_data {
            for (k, v) in texts {
                encoder.add_text_chunk((*k).to_owned(), (*v).to_owned()).unwrap();
            }
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[255, 0, 0, 255, 0, 0, 255, 128]).unwrap();
        if after_data {
            for (k, v) in texts {
                writer.write_text_chunk(&png::text_metadata::TEXtChunk::new(*k, *v)).unwrap();
            }
        }
        writer.finish().unwrap();
        out
    }

    /// The CRC-32 of PNG chunks (ISO 3309), bit by bit.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    fn b64(raw: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(raw).unwrap())
    }

    fn pixels(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(Cursor::new(png)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        buf.truncate(frame.buffer_size());
        (frame.width, frame.height, buf)
    }

    #[test]
    fn v2_and_v3_cards_round_trip_through_json_png_and_charx() {
        for (text, spec, chunk) in [(ARIA, SPEC_V3, PNG_KEY_V3), (BRAM, SPEC_V2, PNG_KEY_V2)] {
            let raw = with_unknown_keys(text);
            let read = read_card(&serde_json::to_vec(&raw).unwrap()).unwrap();
            assert_eq!(read.format, CardFormat::Json);
            assert!(read.original.is_none());
            assert_eq!(read.raw, raw);
            assert_eq!(read.card.spec, spec);

            let json = read_card(&to_json(&raw)).unwrap();
            assert_eq!(json.raw, raw, "{spec} through JSON");

            let png = to_png(&raw, spec, None).unwrap();
            let texts = png_texts(&png);
            assert_eq!(texts.len(), 1, "{texts:?}");
            assert_eq!(texts[0].0, chunk);
            let from_png = read_card(&png).unwrap();
            assert_eq!(from_png.format, CardFormat::Png);
            assert_eq!(from_png.raw, raw, "{spec} through PNG");
            assert_eq!(from_png.original.as_deref(), Some(png.as_slice()));
            let (w, h, _) = pixels(&png);
            assert_eq!((w, h), (400, 600), "the placeholder");

            // Again with the PNG as the original: its image, one card chunk (the new one).
            let mut changed = raw.clone();
            changed["data"]["creator_notes"] = json!("changed");
            let again = to_png(&changed, spec, Some(&png)).unwrap();
            assert_eq!(png_texts(&again).len(), 1);
            assert_eq!(read_card(&again).unwrap().raw, changed);
            assert_eq!(pixels(&again), pixels(&png));

            let charx = to_charx(&raw, None).unwrap();
            let from_charx = read_card(&charx).unwrap();
            assert_eq!(from_charx.format, CardFormat::Charx);
            assert_eq!(from_charx.raw, raw, "{spec} through CHARX");
        }
    }

    #[test]
    fn unknown_keys_survive_everywhere() {
        let raw = with_unknown_keys(ARIA);
        for bytes in [to_json(&raw), to_png(&raw, SPEC_V3, None).unwrap(), to_charx(&raw, None).unwrap()] {
            let back = read_card(&bytes).unwrap().raw;
            assert_eq!(back["x_top_level"], json!({"kept": [1, 2.5, "three"]}));
            assert_eq!(back["data"]["x_data_field"], "kept too");
            assert_eq!(back["data"]["extensions"]["some_frontend"], json!({"x": 1}));
            assert_eq!(back["data"]["extensions"]["x_frontend"]["nested"]["deep"], true);
            let entry = &back["data"]["character_book"]["entries"][4];
            assert_eq!(entry["extensions"], json!({"depth": 4, "unknown_field": true}));
            // Key order is kept too: the export is the same text.
            assert_eq!(to_json(&back), to_json(&raw));
        }
        // The typed card keeps them as well.
        let card = validate(&raw).unwrap();
        assert_eq!(card.extra["x_top_level"], json!({"kept": [1, 2.5, "three"]}));
        assert_eq!(card.data.extra["x_data_field"], "kept too");
        let book = card.data.character_book.unwrap();
        assert_eq!(book.entries[4].extensions["unknown_field"], true);
    }

    #[test]
    fn a_charx_keeps_its_assets_and_a_png_its_pixels_and_other_chunks() {
        let raw = value(ARIA);
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("card.json", stored).unwrap();
        zip.write_all(b"{\"stale\": true}").unwrap();
        zip.start_file("assets/icon/images/main.png", stored).unwrap();
        zip.write_all(b"not really a png").unwrap();
        zip.start_file("x_app.json", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(b"{\"app\": 1}").unwrap();
        let original = zip.finish().unwrap().into_inner();

        let charx = to_charx(&raw, Some(&original)).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(&charx)).unwrap();
        let names: Vec<String> = archive.file_names().map(|n| n.unwrap().into_owned()).collect();
        assert_eq!(names.iter().filter(|n| **n == "card.json").count(), 1, "{names:?}");
        let mut asset = Vec::new();
        archive.by_name("assets/icon/images/main.png").unwrap().read_to_end(&mut asset).unwrap();
        assert_eq!(asset, b"not really a png");
        let mut app = String::new();
        archive.by_name("x_app.json").unwrap().read_to_string(&mut app).unwrap();
        assert_eq!(app, "{\"app\": 1}");
        assert_eq!(read_card(&charx).unwrap().raw, raw);

        // A PNG of someone else's: its pixels and its other chunks stay, its old card goes.
        let photo = png_with(&[("Title", "a photo"), ("chara", &b64(&value(BRAM)))], true);
        let png = to_png(&raw, SPEC_V3, Some(&photo)).unwrap();
        assert_eq!(pixels(&png), pixels(&photo));
        let mut keys: Vec<String> = png_texts(&png).into_iter().map(|(k, _)| k).collect();
        keys.sort();
        assert_eq!(keys, ["Title", "ccv3"]);
        assert_eq!(read_card(&png).unwrap().card.data.name, "Aria");
    }

    #[test]
    fn ccv3_is_preferred_when_a_png_has_both_chunks_wherever_they_are() {
        let (aria, bram) = (value(ARIA), value(BRAM));
        for after_data in [false, true] {
            let png = png_with(&[("chara", &b64(&bram)), ("ccv3", &b64(&aria))], after_data);
            let card = read_card(&png).unwrap();
            assert_eq!(card.card.data.name, "Aria", "after the image data: {after_data}");
            assert_eq!(card.raw, aria);
            let png = png_with(&[("chara", &b64(&bram))], after_data);
            assert_eq!(read_card(&png).unwrap().card.data.name, "Bram");
        }
        // Base64 without padding, and a chunk holding bare JSON, are read too.
        let unpadded = b64(&bram).trim_end_matches('=').to_owned();
        assert_eq!(read_card(&png_with(&[("chara", &unpadded)], false)).unwrap().raw, bram);
        let bare = serde_json::to_string(&bram).unwrap();
        assert_eq!(read_card(&png_with(&[("chara", &bare)], false)).unwrap().raw, bram);
        // Bare UTF-8 JSON in a tEXt chunk (whose bytes are Latin-1 to a PNG reader).
        let mut zoe = bram.clone();
        zoe["data"]["name"] = json!("Zoë 🔥");
        let png = {
            let mut png = png_with(&[], false);
            let body = [b"chara\0".as_slice(), serde_json::to_string(&zoe).unwrap().as_bytes()].concat();
            let mut chunk = (body.len() as u32).to_be_bytes().to_vec();
            chunk.extend_from_slice(b"tEXt");
            chunk.extend_from_slice(&body);
            let crc = crc32(&chunk[4..]);
            chunk.extend_from_slice(&crc.to_be_bytes());
            // Before IEND, the last 12 bytes.
            let at = png.len() - 12;
            png.splice(at..at, chunk);
            png
        };
        assert_eq!(read_card(&png).unwrap().card.data.name, "Zoë 🔥");
    }

    #[test]
    fn a_v1_card_is_read_as_v2() {
        let v1 = json!({
            "name": "Old Tom",
            "description": "{{char}} is an old sailor.",
            "personality": "gruff",
            "scenario": "A tavern.",
            "first_mes": "Arr.",
            "mes_example": "<START>\n{{char}}: Arr.",
            "avatar": "none",
            "tags": ["sea"]
        });
        let read = read_card(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(read.card.spec, SPEC_V2);
        assert_eq!(read.card.spec_version, "2.0");
        assert_eq!(read.card.data.name, "Old Tom");
        assert_eq!(read.card.data.first_mes, "Arr.");
        assert_eq!(read.card.data.tags, ["sea"]);
        assert_eq!(read.raw["spec"], "chara_card_v2");
        assert_eq!(read.raw["data"]["alternate_greetings"], json!([]));
        assert_eq!(read.raw["avatar"], "none", "other top-level keys stay");
        assert!(read.raw.get("name").is_none(), "the V1 fields moved into data");
        // The V2 card it became is a valid V2 card, and the same once exported.
        assert_eq!(read_card(&to_json(&read.raw)).unwrap().raw, read.raw);
        // A V1 card in a PNG too.
        let png = png_with(&[("chara", &b64(&v1))], false);
        assert_eq!(read_card(&png).unwrap().raw, read.raw);
    }

    #[test]
    fn a_bad_card_names_the_field() {
        let mut raw = value(BRAM);
        raw["data"].as_object_mut().unwrap().remove("name");
        assert_eq!(invalid(&raw), ("data.name".into(), "is required".into()));

        let mut raw = value(BRAM);
        raw["data"]["name"] = json!("   ");
        assert_eq!(invalid(&raw), ("data.name".into(), "must not be blank".into()));

        let raw: Value =
            serde_json::from_str(include_str!("../../tests/data/characters/bad/missing-name.json")).unwrap();
        assert_eq!(invalid(&raw).0, "data.name");

        let raw: Value =
            serde_json::from_str(include_str!("../../tests/data/characters/bad/entry-keys-not-array.json")).unwrap();
        let err = validate(&raw).unwrap_err().to_string();
        assert_eq!(err, "data.character_book.entries[2].keys: expected an array of strings, found string \"three\"");

        let mut raw = value(ARIA);
        raw["data"]["alternate_greetings"][1] = json!(3);
        assert_eq!(invalid(&raw), ("data.alternate_greetings[1]".into(), "expected a string, found integer 3".into()));

        let mut raw = value(ARIA);
        raw["data"]["character_book"]["entries"][1]["keys"][0] = json!(7);
        assert_eq!(invalid(&raw).0, "data.character_book.entries[1].keys[0]");

        let mut raw = value(ARIA);
        raw["data"]["character_book"]["entries"][0]["enabled"] = json!("yes");
        assert_eq!(
            invalid(&raw),
            ("data.character_book.entries[0].enabled".into(), "expected a boolean, found string \"yes\"".into())
        );

        let mut raw = value(ARIA);
        raw["data"]["character_book"]["entries"][3]["keys"] = json!(["fine", "(unclosed"]);
        let (field, message) = invalid(&raw);
        assert_eq!(field, "data.character_book.entries[3].keys[1]");
        assert!(message.starts_with("not a valid regular expression: ") && message.contains("unclosed"), "{message}");

        // Without use_regex the same key is a plain word.
        raw["data"]["character_book"]["entries"][3]["use_regex"] = json!(false);
        assert!(validate(&raw).is_ok());

        let mut raw = value(ARIA);
        raw["data"]["character_book"]["entries"][0]["position"] = json!("in_the_middle");
        assert_eq!(invalid(&raw).0, "data.character_book.entries[0].position");

        let mut raw = value(ARIA);
        raw["spec"] = json!("chara_card_v4");
        assert_eq!(invalid(&raw).0, "spec");
        raw.as_object_mut().unwrap().remove("spec");
        assert_eq!(invalid(&raw).0, "spec");

        let mut raw = value(ARIA);
        raw["spec_version"] = json!("2.0");
        assert_eq!(invalid(&raw).0, "spec_version");
        raw["spec_version"] = json!("3.1");
        assert!(validate(&raw).is_ok(), "a later 3.x is still V3");
        let mut raw = value(BRAM);
        raw["spec_version"] = json!("3.0");
        assert_eq!(invalid(&raw).0, "spec_version");

        let raw = json!({"spec": "chara_card_v2", "spec_version": "2.0"});
        assert_eq!(invalid(&raw), ("data".into(), "is required".into()));
        assert_eq!(invalid(&json!([1])).0, "card");
    }

    #[test]
    fn bad_chorus_extensions_are_refused_naming_the_field() {
        let raw: Value =
            serde_json::from_str(include_str!("../../tests/data/characters/bad/vitals-bounds.json")).unwrap();
        assert_eq!(
            validate(&raw).unwrap_err().to_string(),
            "data.extensions.chorus.vitals[0].default: 150 is outside [0, 100]"
        );

        let cases: [(&str, Value, &str); 14] = [
            ("/vitals/1/min", json!(100), "vitals[1].max"),
            ("/vitals/1/max", json!(-5), "vitals[1].max"),
            ("/vitals/2/decay_per_turn", json!(-1), "vitals[2].decay_per_turn"),
            ("/vitals/2/decay_per_hour", json!(-0.5), "vitals[2].decay_per_hour"),
            ("/vitals/1/name", json!("mood"), "vitals[1].name"),
            ("/vitals/1/name", json!("2fast"), "vitals[1].name"),
            ("/vitals/1/name", json!("has space"), "vitals[1].name"),
            ("/vitals/0/default", json!("elated"), "vitals[0].default"),
            ("/vitals/0/values", json!([]), "vitals[0].values"),
            ("/vitals/0/values", json!(["cheerful", "calm", "cheerful"]), "vitals[0].values[2]"),
            ("/vitals/0/type", json!("colour"), "vitals[0]"),
            ("/memory/top_k", json!(51), "memory.top_k"),
            ("/memory/merge_threshold", json!(0), "memory.merge_threshold"),
            ("/memory/recency_decay", json!(1.5), "memory.recency_decay"),
        ];
        for (pointer, bad, field) in cases {
            let mut raw = value(ARIA);
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            raw.pointer_mut(&format!("/data/extensions/chorus{parent}")).unwrap()[key] = bad.clone();
            let (got, message) = invalid(&raw);
            assert_eq!(got, format!("data.extensions.chorus.{field}"), "{pointer} = {bad}: {message}");
        }

        let mut raw = value(ARIA);
        raw["data"]["extensions"]["chorus"]["vitals"][1].as_object_mut().unwrap().remove("max");
        assert_eq!(invalid(&raw), ("data.extensions.chorus.vitals[1].max".into(), "is required".into()));
        let mut raw = value(ARIA);
        raw["data"]["extensions"]["chorus"]["memory"]["top_k"] = json!("three");
        assert_eq!(invalid(&raw).0, "data.extensions.chorus.memory.top_k");
        let mut raw = value(ARIA);
        raw["data"]["extensions"]["chorus"]["vitals"] = json!({});
        assert_eq!(invalid(&raw), ("data.extensions.chorus.vitals".into(), "expected an array, found map".into()));
        // Edge values that are fine.
        let mut raw = value(ARIA);
        raw["data"]["extensions"]["chorus"]["memory"]["top_k"] = json!(50);
        raw["data"]["extensions"]["chorus"]["memory"]["merge_threshold"] = json!(1);
        raw["data"]["extensions"]["chorus"]["vitals"][1]["default"] = json!(100);
        assert!(validate(&raw).is_ok());
    }

    #[test]
    fn the_chorus_extension_is_read_or_defaulted() {
        let aria = validate(&value(ARIA)).unwrap();
        let ext = chorus_extension(&aria);
        let names: Vec<&str> = ext.vitals.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["mood", "trust", "energy"]);
        assert_eq!(ext.vitals[1].scope, chorus_proto::character::VitalScope::User);
        assert!(
            matches!(ext.vitals[2].kind, VitalKind::Number { default, decay_per_turn, .. } if default == 80.0 && decay_per_turn == 1.0)
        );
        assert!(
            matches!(&ext.vitals[0].kind, VitalKind::Enum { default, values } if default == "cheerful" && values.len() == 4)
        );
        assert_eq!(ext.memory.top_k, 3);
        let bram = validate(&value(BRAM)).unwrap();
        assert_eq!(chorus_extension(&bram), ChorusExtension::default());
    }

    #[test]
    fn what_is_no_card_is_a_format_error() {
        let format = |bytes: &[u8]| match read_card(bytes) {
            Err(CardError::Format(message)) => message,
            other => panic!("expected Format, got {other:?}"),
        };
        assert!(format(b"hello there").starts_with("not a character card"));
        assert!(format(&png_with(&[("Title", "a photo")], false)).contains("no ccv3 or chara"));
        assert!(format(&png_with(&[("chara", "!!! not base64 !!!")], false)).contains("not base64"));
        let not_json = base64::engine::general_purpose::STANDARD.encode("not json");
        assert!(format(&png_with(&[("ccv3", &not_json)], false)).contains("not JSON"));
        assert!(format(b"\x89PNG\r\n\x1a\ntruncated").starts_with("not a readable PNG"));

        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("other.json", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(b"{}").unwrap();
        let zip = zip.finish().unwrap().into_inner();
        assert!(format(&zip).contains("no card.json"));
        assert!(format(b"PK\x03\x04broken").starts_with("not a readable CHARX"));
        // A byte order mark is fine.
        let mut bom = b"\xef\xbb\xbf".to_vec();
        bom.extend_from_slice(BRAM.as_bytes());
        assert_eq!(read_card(&bom).unwrap().card.data.name, "Bram");
    }

    #[test]
    fn lorebook_key_regexes_take_javascript_literals() {
        let re = key_regex("/\\bghost(s|ly)?\\b/i", true).unwrap();
        assert!(re.is_match("a GHOSTLY light"));
        assert!(!re.is_match("ghostwriter"));
        let re = key_regex("Marrow", true).unwrap();
        assert!(re.is_match("Marrow Bay") && !re.is_match("marrow bay"));
        assert!(key_regex("Marrow", false).unwrap().is_match("marrow bay"));
        assert!(key_regex("/^bay$/m", true).unwrap().is_match("the\nbay\nhere"));
        assert!(key_regex("/a.b/s", true).unwrap().is_match("a\nb"));
        assert!(key_regex("/x/g", true).unwrap().is_match("x"));
        // Not a literal: the slashes are part of the pattern.
        assert!(key_regex("/usr/local", true).unwrap().is_match("/usr/local"));
        assert_eq!(key_regex("(", true).unwrap_err(), "unclosed group");
    }

    #[test]
    fn formats_parse_and_sniff() {
        assert_eq!(CardFormat::parse("PNG"), Some(CardFormat::Png));
        assert_eq!(CardFormat::parse("charx"), Some(CardFormat::Charx));
        assert_eq!(CardFormat::parse("json"), Some(CardFormat::Json));
        assert_eq!(CardFormat::parse("webp"), None);
        assert_eq!(CardFormat::Charx.extension(), "charx");
        assert_eq!(CardFormat::Png.to_string(), "png");
        assert_eq!(CardFormat::sniff(&to_png(&value(BRAM), SPEC_V2, None).unwrap()), CardFormat::Png);
        assert_eq!(CardFormat::sniff(&to_charx(&value(BRAM), None).unwrap()), CardFormat::Charx);
        assert_eq!(CardFormat::sniff(b"{}"), CardFormat::Json);
    }
}
