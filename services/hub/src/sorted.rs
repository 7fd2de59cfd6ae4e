//! Small sorted lists of (key, value), kept in key order.

/// Sets `key`'s value in `entries`, sorted by key: changes it, adds it in
/// its place, or (`None`) takes it out.
pub(crate) fn set<K: Ord, V>(entries: &mut Vec<(K, V)>, key: K, value: Option<V>) {
    match (entries.binary_search_by(|(k, _)| k.cmp(&key)), value) {
        (Ok(at), Some(value)) => entries[at].1 = value,
        (Ok(at), None) => {
            entries.remove(at);
        }
        (Err(at), Some(value)) => entries.insert(at, (key, value)),
        (Err(_), None) => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn set_changes_adds_in_order_and_takes_out() {
        let mut entries = vec![(1, 'a'), (5, 'e')];
        super::set(&mut entries, 3, Some('c'));
        super::set(&mut entries, 5, Some('E'));
        super::set(&mut entries, 1, None);
        super::set(&mut entries, 9, None);
        assert_eq!(entries, [(3, 'c'), (5, 'E')]);
    }
}
