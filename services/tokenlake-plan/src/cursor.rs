//! Plan identity and cursors.
//!
//! A plan is identified by three fingerprints: the data (what the resolved version selects,
//! tokens included), the recipe (less its lake location and version) and the seed. A cursor is
//! the plan identity plus the number of samples consumed, written as an opaque string with a
//! check digit so that a truncated or mistyped cursor is refused rather than misread.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::PlanError;

const PREFIX: &str = "tlc1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanId {
    pub data: u64,
    pub recipe: u64,
    pub seed: u64,
}

impl PlanId {
    /// The short name of the plan (its cache directory).
    pub fn hex(&self) -> String {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&self.data.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.recipe.to_le_bytes());
        bytes[16..].copy_from_slice(&self.seed.to_le_bytes());
        format!("{:016x}", xxh3_64(&bytes))
    }

    /// Says which parts of `other` differ from `self`, for a refused cursor.
    pub fn differences(&self, other: &PlanId) -> Vec<String> {
        let mut out = Vec::new();
        if self.data != other.data {
            out.push(format!(
                "the data differs (this plan's lake version selects other documents or tokens: \
                 data {:016x}, cursor's {:016x})",
                self.data, other.data
            ));
        }
        if self.recipe != other.recipe {
            out.push(format!(
                "the recipe differs (seq_len, tokens, components or stages: recipe {:016x}, \
                 cursor's {:016x})",
                self.recipe, other.recipe
            ));
        }
        if self.seed != other.seed {
            out.push(format!(
                "the seed differs (this plan's {}, cursor's {})",
                self.seed, other.seed
            ));
        }
        out
    }
}

/// Where a stream stands: `consumed` samples of plan `plan` have been handed out, so the next
/// step starts at global sample `consumed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub plan: PlanId,
    pub consumed: u64,
}

impl Cursor {
    fn body(&self) -> String {
        format!(
            "{PREFIX}-{:016x}-{:016x}-{:016x}-{}",
            self.plan.data, self.plan.recipe, self.plan.seed, self.consumed
        )
    }
}

fn check(body: &str) -> String {
    format!("{:04x}", xxh3_64(body.as_bytes()) & 0xffff)
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body();
        write!(f, "{body}-{}", check(&body))
    }
}

impl FromStr for Cursor {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let invalid = |reason: &str| PlanError::InvalidCursor {
            cursor: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() != 6 || parts[0] != PREFIX {
            return Err(invalid(
                "not a tokenlake cursor (they look like tlc1-…, as printed by `tokenlake stream --cursor-out`)",
            ));
        }
        let (body, given) = s.rsplit_once('-').expect("six parts");
        if check(body) != given {
            return Err(invalid(
                "the check digits do not match; the cursor was cut or changed",
            ));
        }
        let hex = |p: &str| {
            u64::from_str_radix(p, 16).map_err(|_| invalid("a fingerprint is not hexadecimal"))
        };
        Ok(Cursor {
            plan: PlanId {
                data: hex(parts[1])?,
                recipe: hex(parts[2])?,
                seed: hex(parts[3])?,
            },
            consumed: parts[4]
                .parse()
                .map_err(|_| invalid("the sample count is not a number"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_damage() {
        let c = Cursor {
            plan: PlanId {
                data: 1,
                recipe: u64::MAX,
                seed: 1234,
            },
            consumed: 987654321,
        };
        let s = c.to_string();
        assert_eq!(s.parse::<Cursor>().unwrap(), c);
        let damaged = s.replace("987654321", "987654322");
        assert!(
            damaged
                .parse::<Cursor>()
                .unwrap_err()
                .to_string()
                .contains("check digits")
        );
        assert!("hello".parse::<Cursor>().is_err());
        assert!(s[..s.len() - 2].parse::<Cursor>().is_err());
    }

    #[test]
    fn differences_name_each_part() {
        let a = PlanId {
            data: 1,
            recipe: 2,
            seed: 3,
        };
        assert!(a.differences(&a).is_empty());
        let d = a.differences(&PlanId {
            data: 9,
            recipe: 2,
            seed: 4,
        });
        assert_eq!(d.len(), 2);
        assert!(d[0].contains("data") && d[1].contains("seed"));
    }
}
