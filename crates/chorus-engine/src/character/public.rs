//! What a client may see of a [`CharacterError`]: its [`PublicError`], as the engine's other
//! errors map in `crate::error` (a missing character, snapshot or memory is a 404, a refused
//! field a 400 naming it, a taken id a 409; faults of the directory or the store keep their
//! details for the log).

use super::card::CardError;
use super::dir::DirError;
use super::instance::CharacterError;
use super::vitals::VitalError;
use crate::{ErrorClass, PublicError};

fn public(class: ErrorClass, message: String, param: Option<&str>, code: Option<&'static str>) -> PublicError {
    PublicError { class, message, param: param.map(str::to_owned), code, retry_after: None, context_size: None }
}

impl CharacterError {
    /// What a client sees of this error.
    pub fn public(&self) -> PublicError {
        use ErrorClass::*;
        match self {
            Self::NoDirectory => public(NotSupported, self.to_string(), None, Some("not_supported")),
            Self::NotFound(_) => public(NotFound, self.to_string(), None, Some("character_not_found")),
            Self::SnapshotNotFound(_) => public(NotFound, self.to_string(), Some("name"), Some("snapshot_not_found")),
            Self::MemoryNotFound(_) => public(NotFound, self.to_string(), Some("memory_id"), Some("memory_not_found")),
            Self::WrongSession(_) => public(InvalidRequest, self.to_string(), Some("session_id"), None),
            Self::Invalid(v) => public(InvalidRequest, v.message.clone(), Some(v.param), None),
            Self::Vital(v) => {
                let param = match v {
                    VitalError::Unknown(_) => "name",
                    VitalError::Invalid { .. } => "value",
                };
                public(InvalidRequest, v.to_string(), Some(param), None)
            }
            Self::Dir(d) => d.public(),
            Self::Session(e) => e.public(),
            Self::Engine(e) => e.public(),
            Self::Store(e) => e.public(),
        }
    }

    /// True for server faults, whose details belong in the log.
    pub fn is_internal(&self) -> bool {
        self.public().class == ErrorClass::Internal
    }
}

impl DirError {
    /// What a client sees of this error: a refused card names the field at fault
    /// (`data.character_book.entries[2].keys`) in `param`.
    pub fn public(&self) -> PublicError {
        use ErrorClass::*;
        match self {
            Self::NotFound(_) => public(NotFound, self.to_string(), None, Some("character_not_found")),
            Self::Exists(_) => public(Conflict, self.to_string(), Some("id"), Some("character_exists")),
            Self::BadId(_) => public(InvalidRequest, self.to_string(), Some("id"), None),
            Self::Card(CardError::Invalid { field, .. }) => {
                public(InvalidRequest, self.to_string(), Some(field), Some("invalid_card"))
            }
            Self::Card(CardError::Format(_)) => public(InvalidRequest, self.to_string(), None, Some("invalid_card")),
            Self::Corrupt { .. } | Self::Io { .. } => PublicError::internal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidationError;

    #[test]
    fn a_refused_card_names_its_field() {
        let e = CharacterError::Dir(DirError::Card(CardError::Invalid {
            field: "data.alternate_greetings[1]".into(),
            message: "expected a string".into(),
        }));
        let p = e.public();
        assert_eq!((p.class, p.param.as_deref()), (ErrorClass::InvalidRequest, Some("data.alternate_greetings[1]")));
        assert!(p.message.contains("data.alternate_greetings[1]"), "{}", p.message);
    }

    #[test]
    fn classes_and_params() {
        let class = |e: CharacterError| e.public().class;
        assert_eq!(class(CharacterError::NotFound("x".into())), ErrorClass::NotFound);
        assert_eq!(class(CharacterError::SnapshotNotFound("x".into())), ErrorClass::NotFound);
        assert_eq!(class(CharacterError::MemoryNotFound("x".into())), ErrorClass::NotFound);
        assert_eq!(class(CharacterError::Dir(DirError::NotFound("x".into()))), ErrorClass::NotFound);
        assert_eq!(class(CharacterError::Dir(DirError::Exists("x".into()))), ErrorClass::Conflict);
        assert_eq!(class(CharacterError::NoDirectory), ErrorClass::NotSupported);
        let io = DirError::Io { path: "/secret/x.json".into(), source: std::io::Error::other("disk on fire") };
        let p = CharacterError::Dir(io).public();
        assert_eq!(p.class, ErrorClass::Internal);
        assert!(!p.message.contains("secret"));
        let param = |e: CharacterError| e.public().param;
        let vital = VitalError::Invalid { name: "mood".into(), message: "not one of the values".into() };
        assert_eq!(param(CharacterError::Vital(vital)).as_deref(), Some("value"));
        let wrong = CharacterError::WrongSession(crate::store::SessionId::from_string("ses_x".to_owned()));
        assert_eq!(param(wrong).as_deref(), Some("session_id"));
        assert_eq!(param(ValidationError::new("limit", "too big").into()).as_deref(), Some("limit"));
    }
}
