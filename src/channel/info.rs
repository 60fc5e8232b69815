//! Messages of any type sent to a channel (`handle_info`).

use std::any::Any;

/// A message for [`crate::Channel::handle_info`]: any `Send` value.
pub struct Info(Box<dyn Any + Send>);

impl Info {
    /// Wrap a value.
    pub fn new<T: Any + Send>(value: T) -> Self {
        Self(Box::new(value))
    }

    /// Whether the message holds a `T`.
    pub fn is<T: Any>(&self) -> bool {
        self.0.is::<T>()
    }

    /// Take the value out if it is a `T`, or get the message back.
    pub fn downcast<T: Any>(self) -> Result<T, Info> {
        self.0.downcast::<T>().map(|b| *b).map_err(Info)
    }
}

impl std::fmt::Debug for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Info(..)")
    }
}
