//! [`AppState`]: the application's own values, given to the endpoint
//! builder once and reachable from every connect callback and channel by
//! their type (server-wide state without handles smuggled through
//! closures).

use std::any::Any;
use std::sync::Arc;

/// Values of distinct types, looked up by type. Cheap to clone (one `Arc`).
///
/// ```
/// # use fawkes::AppState;
/// struct Db(&'static str);
/// let state = AppState::default().with(Db("postgres://"));
/// assert_eq!(state.get::<Db>().map(|db| db.0), Some("postgres://"));
/// assert!(state.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct AppState {
    values: Arc<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("values", &self.values.len())
            .finish()
    }
}

impl AppState {
    /// This state plus `value`, replacing a value of the same type.
    pub fn with<T: Any + Send + Sync>(self, value: T) -> Self {
        let mut values: Vec<_> = self
            .values
            .iter()
            .filter(|v| !v.is::<T>())
            .cloned()
            .collect();
        values.push(Arc::new(value));
        Self {
            values: Arc::new(values),
        }
    }

    /// The value of type `T`, if one was given.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values.iter().find_map(|v| v.downcast_ref::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::AppState;

    #[test]
    fn a_second_value_of_a_type_replaces_the_first_and_others_stay() {
        let state = AppState::default().with(1u32).with("a").with(2u32);
        assert_eq!(state.get::<u32>(), Some(&2));
        assert_eq!(state.get::<&str>(), Some(&"a"));
        assert_eq!(state.get::<u64>(), None);
    }
}
