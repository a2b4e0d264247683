//! Which transforms a caller accepts.

/// Acceptance policy passed to every registry constructor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Allow legacy transforms (DES, 3DES, MD5, RIPEMD-160, MODP-768/1024).
    pub allow_insecure: bool,
}

impl Policy {
    /// Secure transforms only (the default).
    pub const SECURE: Policy = Policy {
        allow_insecure: false,
    };
    /// Legacy transforms allowed too.
    pub const INSECURE: Policy = Policy {
        allow_insecure: true,
    };

    /// Refuse `name` unless insecure transforms are allowed.
    pub fn check_insecure(
        &self,
        name: &'static str,
        why: &'static str,
    ) -> Result<(), crate::Error> {
        if self.allow_insecure {
            Ok(())
        } else {
            Err(crate::Error::Insecure { name, why })
        }
    }
}
