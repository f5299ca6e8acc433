//! Which node owns a key (pure): Redis Cluster's hash slots (CRC16 of the key, or of its
//! `{hash tag}`, modulo 16384) and the slot map read from `CLUSTER SLOTS`.

use crate::config::redis_url::Address;

/// Number of hash slots of a Redis cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// The slot of `key`: only the part between the first `{` and the next `}` counts when it is
/// non-empty, so keys sharing a tag share a node.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// CRC16-CCITT (XMODEM), the cluster's key hash.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The master of each slot range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SlotMap {
    /// `(first slot, last slot, master)`, sorted by first slot.
    ranges: Vec<(u16, u16, Address)>,
}

impl SlotMap {
    /// Reads a `CLUSTER SLOTS` reply given by the node at `asked` (a master announced without an
    /// IP is that node's host). `None` when the reply is not a slot list.
    pub(crate) fn parse(reply: &redis::Value, asked: &Address) -> Option<SlotMap> {
        let redis::Value::Array(entries) = reply else {
            return None;
        };
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let redis::Value::Array(fields) = entry else {
                return None;
            };
            let [first, last, master, ..] = fields.as_slice() else {
                return None;
            };
            let redis::Value::Array(master) = master else {
                return None;
            };
            let [host, port, ..] = master.as_slice() else {
                return None;
            };
            let host: String = redis::from_redis_value_ref(host).ok()?;
            let host = if host.is_empty() || host == "?" {
                asked.host.clone()
            } else {
                host
            };
            ranges.push((
                redis::from_redis_value_ref(first).ok()?,
                redis::from_redis_value_ref(last).ok()?,
                Address {
                    host,
                    port: redis::from_redis_value_ref(port).ok()?,
                },
            ));
        }
        ranges.sort_by_key(|range| range.0);
        Some(SlotMap { ranges })
    }

    /// The master serving `slot`, if any.
    pub(crate) fn owner(&self, slot: u16) -> Option<&Address> {
        let at = self.ranges.partition_point(|range| range.0 <= slot);
        let (_, last, master) = self.ranges.get(at.checked_sub(1)?)?;
        (slot <= *last).then_some(master)
    }

    /// Every master, once each, in slot order.
    pub(crate) fn masters(&self) -> Vec<Address> {
        let mut masters: Vec<Address> = Vec::new();
        for (_, _, master) in &self.ranges {
            if !masters.contains(master) {
                masters.push(master.clone());
            }
        }
        masters
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn slots_match_redis_cluster_including_hash_tags() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"frontend:a.test"), slot(b"frontend:a.test"));
        assert_eq!(slot(b"123456789"), 0x31C3 % SLOTS);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(
            slot(b"p{}:x"),
            crc16(b"p{}:x") % SLOTS,
            "an empty tag hashes the key"
        );
        assert_eq!(slot(b"{h}frontend:a"), slot(b"h"));
    }

    fn node(host: &str, port: i64) -> Value {
        let id = Value::BulkString(b"id".to_vec());
        Value::Array(vec![Value::BulkString(host.into()), Value::Int(port), id])
    }

    #[test]
    fn slot_map_reads_cluster_slots_and_finds_owners() {
        let asked = Address {
            host: "10.0.0.9".into(),
            port: 7000,
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(5_461),
                Value::Int(16_383),
                node("127.0.0.1", 7001),
                node("127.0.0.1", 7004),
            ]),
            Value::Array(vec![Value::Int(0), Value::Int(5_460), node("", 7000)]),
        ]);
        let map = SlotMap::parse(&reply, &asked).unwrap();
        assert_eq!(map.owner(0), Some(&asked));
        assert_eq!(map.owner(5_460), Some(&asked));
        assert_eq!(map.owner(5_461).map(|a| a.port), Some(7001));
        assert_eq!(map.owner(16_383).map(|a| a.port), Some(7001));
        assert_eq!(map.masters().len(), 2);
        let partial = Value::Array(vec![Value::Array(vec![
            Value::Int(10),
            Value::Int(20),
            node("h", 1),
        ])]);
        let partial = SlotMap::parse(&partial, &asked).unwrap();
        assert_eq!((partial.owner(9), partial.owner(21)), (None, None));
        assert!(SlotMap::parse(&Value::Int(1), &asked).is_none());
        assert!(SlotMap::default().is_empty());
    }
}
