//! Vitals: a character's typed, bounded state ([`VitalSpec`]s from the card's chorus
//! extension), one set for the character and one per user for `scope: user` vitals. Values
//! are JSON numbers (within `[min, max]`, always clamped) or strings (one of the enum's values).
//! Every change becomes a [`VitalChange`] for the history the store keeps.
//!
//! After a turn the model proposes changes under a grammar ([`update_schema`]: a number's
//! change is bounded to a tenth of its range per turn, an enum's value is one of its values);
//! numbers also decay: they fall by `decay_per_turn` each turn and `decay_per_hour` per hour
//! (a negative decay makes them rise), within their bounds.

use std::collections::BTreeMap;

use chorus_proto::character::{VitalKind, VitalScope, VitalSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::store::VitalChange;

/// The values of a character session's vitals; its JSON form is what
/// [`crate::store::CharacterState::vitals`] holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vitals {
    /// Character-wide values by name.
    #[serde(default)]
    pub character: BTreeMap<String, Value>,
    /// Per-user values: user name → name → value.
    #[serde(default)]
    pub users: BTreeMap<String, BTreeMap<String, Value>>,
}

/// Who changed a vital, and when: what a [`VitalChange`] records besides the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// `turn`, `tool`, `decay`, `api`, `reset`, `load`.
    pub source: &'a str,
    /// The turn it happened after.
    pub turn: u64,
    /// Unix time in milliseconds.
    pub at: i64,
}

/// A value a client or the model tried to set that the schema refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VitalError {
    /// No vital of that name.
    #[error("no vital named `{0}`")]
    Unknown(String),
    /// The value's type or enum value is wrong.
    #[error("vital `{name}`: {message}")]
    Invalid {
        /// The vital.
        name: String,
        /// What is wrong.
        message: String,
    },
}

fn default_value(spec: &VitalSpec) -> Value {
    match &spec.kind {
        VitalKind::Number { default, .. } => number(*default),
        VitalKind::Enum { default, .. } => json!(default),
    }
}

/// A number as vitals keep it: integral values without a fraction.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 { json!(x as i64) } else { json!((x * 1000.0).round() / 1000.0) }
}

impl Vitals {
    /// The card's initial state: every character-wide vital at its default (user vitals start at
    /// their defaults when a user first speaks).
    pub fn initial(specs: &[VitalSpec]) -> Self {
        let character = specs
            .iter()
            .filter(|s| s.scope == VitalScope::Character)
            .map(|s| (s.name.clone(), default_value(s)))
            .collect();
        Self { character, users: BTreeMap::new() }
    }

    /// Parse [`CharacterState::vitals`](crate::store::CharacterState::vitals); an empty or
    /// unreadable text gives the initial state.
    pub fn parse(json: &str, specs: &[VitalSpec]) -> Self {
        serde_json::from_str(json).unwrap_or_else(|_| Self::initial(specs))
    }

    /// The JSON text the store keeps.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The current value of every vital as `user` sees it (user vitals at their default until set).
    pub fn values(&self, specs: &[VitalSpec], user: &str) -> BTreeMap<String, Value> {
        specs
            .iter()
            .map(|s| {
                let v = match s.scope {
                    VitalScope::Character => self.character.get(&s.name),
                    VitalScope::User => self.users.get(user).and_then(|u| u.get(&s.name)),
                };
                (s.name.clone(), v.cloned().unwrap_or_else(|| default_value(s)))
            })
            .collect()
    }

    /// [`Vitals::values`] as text, for `{{vitals.NAME}}` and the prompt's state line.
    pub fn rendered(&self, specs: &[VitalSpec], user: &str) -> BTreeMap<String, String> {
        self.values(specs, user)
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect()
    }

    /// Set one vital (numbers clamped into bounds); the change, or `None` when the value stays.
    ///
    /// # Errors
    /// [`VitalError`]: an unknown name, a value of the wrong type, a word not in the enum.
    pub fn set(
        &mut self,
        specs: &[VitalSpec],
        user: &str,
        name: &str,
        value: &Value,
        stamp: Stamp<'_>,
    ) -> Result<Option<VitalChange>, VitalError> {
        let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| VitalError::Unknown(name.to_owned()))?;
        let new = match &spec.kind {
            VitalKind::Number { min, max, .. } => {
                let x = value.as_f64().ok_or_else(|| VitalError::Invalid {
                    name: name.to_owned(),
                    message: format!("expected a number from {min} to {max}"),
                })?;
                number(x.clamp(*min, *max))
            }
            VitalKind::Enum { values, .. } => {
                let s = value.as_str().filter(|s| values.iter().any(|v| v == s)).ok_or_else(|| {
                    VitalError::Invalid { name: name.to_owned(), message: format!("expected one of {values:?}") }
                })?;
                json!(s)
            }
        };
        let old = self.values(specs, user).remove(name);
        if old.as_ref() == Some(&new) {
            return Ok(None);
        }
        let user_field = match spec.scope {
            VitalScope::Character => {
                self.character.insert(name.to_owned(), new.clone());
                None
            }
            VitalScope::User => {
                self.users.entry(user.to_owned()).or_default().insert(name.to_owned(), new.clone());
                Some(user.to_owned())
            }
        };
        Ok(Some(VitalChange {
            id: 0,
            user: user_field,
            name: name.to_owned(),
            old_value: old.map(|v| v.to_string()),
            new_value: new.to_string(),
            source: stamp.source.to_owned(),
            turn: stamp.turn,
            created_at: stamp.at,
        }))
    }

    /// Let every number vital of the character and of `user` decay: it falls by
    /// `decay_per_turn × turns + decay_per_hour × hours` (a negative decay makes it rise),
    /// within its bounds.
    pub fn decay(
        &mut self,
        specs: &[VitalSpec],
        user: &str,
        turns: f64,
        hours: f64,
        turn: u64,
        now: i64,
    ) -> Vec<VitalChange> {
        let mut changes = Vec::new();
        let values = self.values(specs, user);
        for spec in specs {
            let VitalKind::Number { decay_per_turn, decay_per_hour, .. } = spec.kind else { continue };
            let step = decay_per_turn * turns + decay_per_hour * hours;
            let Some(x) = values.get(&spec.name).and_then(Value::as_f64) else { continue };
            if step == 0.0 {
                continue;
            }
            if let Ok(Some(c)) =
                self.set(specs, user, &spec.name, &json!(x - step), Stamp { source: "decay", turn, at: now })
            {
                changes.push(c);
            }
        }
        changes
    }

    /// Apply the model's proposal (the JSON [`update_schema`] describes): numbers are changes,
    /// enums new values; anything out of shape is ignored.
    pub fn apply_update(
        &mut self,
        specs: &[VitalSpec],
        user: &str,
        update: &Value,
        source: &str,
        turn: u64,
        now: i64,
    ) -> Vec<VitalChange> {
        let mut changes = Vec::new();
        let values = self.values(specs, user);
        for spec in specs {
            let Some(proposed) = update.get(&spec.name) else { continue };
            let value = match &spec.kind {
                VitalKind::Number { .. } => {
                    let (Some(delta), Some(x)) = (proposed.as_f64(), values.get(&spec.name).and_then(Value::as_f64))
                    else {
                        continue;
                    };
                    json!(x + delta.clamp(-max_step(spec), max_step(spec)))
                }
                VitalKind::Enum { .. } => proposed.clone(),
            };
            if let Ok(Some(c)) = self.set(specs, user, &spec.name, &value, Stamp { source, turn, at: now }) {
                changes.push(c);
            }
        }
        changes
    }
}

/// The most a number vital may change in one turn: a tenth of its range, at least 1.
fn max_step(spec: &VitalSpec) -> f64 {
    match spec.kind {
        VitalKind::Number { min, max, .. } => ((max - min) / 10.0).max(1.0),
        VitalKind::Enum { .. } => 0.0,
    }
}

/// The JSON schema of the model's proposal after a turn: an object with every vital, numbers
/// as integer changes within ±[`max_step`], enums as one of their values.
pub fn update_schema(specs: &[VitalSpec]) -> Value {
    let mut properties = serde_json::Map::new();
    for spec in specs {
        let schema = match &spec.kind {
            VitalKind::Number { .. } => {
                let step = max_step(spec).floor() as i64;
                json!({"type": "integer", "minimum": -step, "maximum": step})
            }
            VitalKind::Enum { values, .. } => json!({"type": "string", "enum": values}),
        };
        properties.insert(spec.name.clone(), schema);
    }
    let required: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// The vitals' meanings and ranges for the model that updates them, one `- NAME (MEANING): …`
/// line each; the same for every turn of a character, so it belongs in a prompt's stable part.
pub fn describe(specs: &[VitalSpec]) -> String {
    let mut out = String::new();
    for spec in specs {
        let meaning = if spec.description.is_empty() { String::new() } else { format!(" ({})", spec.description) };
        let range = match &spec.kind {
            VitalKind::Number { min, max, .. } => {
                format!("a number from {min} to {max}; answer the change, from -{0} to +{0}", max_step(spec))
            }
            VitalKind::Enum { values, .. } => format!("one of {}; answer the new value", values.join(", ")),
        };
        out.push_str(&format!("- {}{meaning}: {range}\n", spec.name));
    }
    out
}

/// The vitals' current values on one line, `NAME: VALUE, …`.
pub fn current(specs: &[VitalSpec], values: &BTreeMap<String, Value>) -> String {
    specs
        .iter()
        .filter_map(|s| {
            values
                .get(&s.name)
                .map(|v| format!("{}: {}", s.name, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const API: Stamp<'static> = Stamp { source: "api", turn: 1, at: 0 };

    fn specs() -> Vec<VitalSpec> {
        serde_json::from_value(json!([
            {"name": "mood", "type": "enum", "values": ["cheerful", "calm", "worried"], "default": "cheerful"},
            {"name": "trust", "type": "number", "min": 0, "max": 100, "default": 50, "scope": "user"},
            {"name": "energy", "type": "number", "min": 0, "max": 100, "default": 80, "decay_per_turn": 1}
        ]))
        .unwrap()
    }

    #[test]
    fn numbers_are_clamped_and_enums_checked() {
        let specs = specs();
        let mut v = Vitals::initial(&specs);
        let c = v.set(&specs, "sam", "trust", &json!(250), API).unwrap().unwrap();
        assert_eq!((c.old_value.as_deref(), c.new_value.as_str(), c.user.as_deref()), (Some("50"), "100", Some("sam")));
        assert_eq!(v.values(&specs, "sam")["trust"], json!(100));
        assert_eq!(v.values(&specs, "kim")["trust"], json!(50), "user vitals are per user");
        assert!(v.set(&specs, "sam", "mood", &json!("furious"), API).is_err());
        assert!(v.set(&specs, "sam", "nope", &json!(1), API).is_err());
        assert_eq!(v.set(&specs, "sam", "mood", &json!("cheerful"), API).unwrap(), None);
    }

    #[test]
    fn decay_lowers_numbers_within_their_bounds() {
        let specs = specs();
        let mut v = Vitals::initial(&specs);
        assert_eq!(v.decay(&specs, "sam", 1.0, 0.0, 2, 0).len(), 1, "only energy decays");
        assert_eq!(v.values(&specs, "sam")["energy"], json!(79));
        v.decay(&specs, "sam", 500.0, 0.0, 3, 0);
        assert_eq!(v.values(&specs, "sam")["energy"], json!(0));
        assert!(v.decay(&specs, "sam", 1.0, 0.0, 4, 0).is_empty(), "at its minimum it stays");
    }

    #[test]
    fn proposals_are_bounded_changes() {
        let specs = specs();
        let mut v = Vitals::initial(&specs);
        let changes = v.apply_update(&specs, "sam", &json!({"trust": 40, "mood": "calm", "energy": "x"}), "turn", 1, 0);
        assert_eq!(changes.len(), 2);
        assert_eq!(v.values(&specs, "sam")["trust"], json!(60), "a change is at most a tenth of the range");
        assert_eq!(v.values(&specs, "sam")["mood"], json!("calm"));
        let schema = update_schema(&specs);
        assert_eq!(schema["properties"]["trust"]["maximum"], json!(10));
        assert_eq!(schema["properties"]["mood"]["enum"], json!(["cheerful", "calm", "worried"]));
    }
}
