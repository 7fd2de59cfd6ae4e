//! The xAPI versions this store speaks, chosen per request by the
//! `X-Experience-API-Version` header.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XapiVersion {
    V1_0_3,
    V2_0_0,
}

impl XapiVersion {
    /// Every version the store answers, newest first, as `/about` lists them.
    pub const SUPPORTED: [&'static str; 5] = ["2.0.0", "1.0.3", "1.0.2", "1.0.1", "1.0.0"];

    /// Reads a version header value. `1.0`, `1.0.0`…`1.0.3` select 1.0.3
    /// behaviour; `2.0` and `2.0.0` select 2.0.
    pub fn from_header(value: &str) -> Option<Self> {
        match value.trim() {
            "1.0" | "1.0.0" | "1.0.1" | "1.0.2" | "1.0.3" => Some(Self::V1_0_3),
            "2.0" | "2.0.0" => Some(Self::V2_0_0),
            _ => None,
        }
    }

    /// The value sent back in the `X-Experience-API-Version` header.
    pub fn header_value(self) -> &'static str {
        match self {
            Self::V1_0_3 => "1.0.3",
            Self::V2_0_0 => "2.0.0",
        }
    }

    /// The `version` the LRS records on a statement that did not carry one.
    pub fn default_statement_version(self) -> &'static str {
        match self {
            Self::V1_0_3 => "1.0.0",
            Self::V2_0_0 => "2.0.0",
        }
    }
}

impl fmt::Display for XapiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_value())
    }
}
