//! Shards of a run: `--shard I/N` keeps the input IDs whose shard is I.
//!
//! The shard of an ID is a fixed function of the ID alone, the same on every machine and in every
//! version of engage (docs/sharding.md): the SplitMix64 finalizer of the ID's 64-bit value, modulo
//! N. Snowflake IDs share their high bits (the time) and, within a millisecond, their low bits (a
//! sequence number that is mostly 0), so `id % N` would put nearly every ID of a collection in the
//! same few shards; the finalizer mixes every bit into every other before the modulo. Changing this
//! function would make a shard store resumed by a later engage take other IDs, so
//! `the_function_never_changes` pins its values.

use std::fmt;
use std::str::FromStr;

/// The most shards a run can be split into.
pub const MAX_SHARDS: u32 = 4096;

/// One shard of a run: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    /// I, from 0.
    pub index: u32,
    /// N.
    pub count: u32,
}

/// The SplitMix64 finalizer (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014): a bijection of u64 in which every input bit changes every output bit with
/// probability about 1/2.
pub fn mix(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The shard (of `count`) that Tweet ID `id` belongs to.
pub fn shard_of(id: u64, count: u32) -> u32 {
    (mix(id) % u64::from(count.max(1))) as u32
}

impl Shard {
    /// Whether this shard keeps `id`.
    pub fn owns(&self, id: u64) -> bool {
        shard_of(id, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = |why: &str| {
            format!("shard `{s}`: {why} (write I/N, e.g. 0/4: shard I of N, I from 0 to N-1)")
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(|| bad("no `/`"))?;
        let index: u32 = i.trim().parse().map_err(|_| bad("I is not a number"))?;
        let count: u32 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(&format!("N must be 1 to {MAX_SHARDS}")));
        }
        if index >= count {
            return Err(bad("I must be below N"));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_never_changes() {
        // Fixed values (computed independently too: mix(0) is SplitMix64's first output from seed
        // 0): a shard store resumed or merged by any later engage depends on them.
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix(1), 0x910A_2DEC_8902_5CC1);
        assert_eq!(mix(1_460_323_737_035_677_698), 0x0F3B_1F0B_0F25_4439);
        let ids = [
            1_460_323_737_035_677_698u64,
            1_460_323_737_035_677_699,
            1_700_000_000_000_000_000,
            20,
            u64::MAX,
        ];
        let shards: Vec<u32> = ids.iter().map(|&id| shard_of(id, 4)).collect();
        assert_eq!(shards, [1, 1, 0, 0, 0]);
        let shards: Vec<u32> = ids.iter().map(|&id| shard_of(id, 7)).collect();
        assert_eq!(shards, [6, 0, 6, 5, 0]);
    }

    #[test]
    fn snowflake_ids_spread_evenly() {
        // IDs of one second, the sequence numbers mostly 0 (as real Tweet IDs are): `id % 4` would
        // put every one in shard 0.
        let base: u64 = 1_460_323_737_035_677_698 >> 22 << 22;
        let n = 4u32;
        let mut counts = [0u64; 4];
        let total = 40_000u64;
        for k in 0..total {
            let id = base + ((k % 1000) << 22) + ((k / 1000) << 17);
            counts[shard_of(id, n) as usize] += 1;
            assert_eq!(id % 4, base % 4);
        }
        for c in counts {
            // Within 5 % of a quarter each.
            assert!(c.abs_diff(total / 4) < total / 80, "{counts:?}");
        }
    }

    #[test]
    fn each_id_is_in_exactly_one_shard() {
        for id in (0..10_000u64).map(|k| mix(k) >> 1) {
            let owners: Vec<u32> = (0..5)
                .filter(|&i| Shard { index: i, count: 5 }.owns(id))
                .collect();
            assert_eq!(owners.len(), 1);
        }
    }

    #[test]
    fn parses_i_of_n_and_refuses_the_rest() {
        assert_eq!("0/4".parse(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(" 3/4 ".parse(), Ok(Shard { index: 3, count: 4 }));
        assert_eq!("3/4".parse::<Shard>().unwrap().to_string(), "3/4");
        for bad in ["4/4", "1/0", "-1/4", "1", "a/4", "1/b", "0/5000", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("write I/N"), "{bad}: {e}");
        }
    }
}
