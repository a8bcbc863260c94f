//! [`NameMap`]: the map behind rooms and typists, keyed by name and kept in name order.

use crate::prelude::*;
/// A map from names (rooms, users) to `V`, iterated in name order, as a `BTreeMap<String, V>`
/// would be, but held in two sorted vectors.
///
/// Why not a `BTreeMap`: the client holds a few dozen rooms and a handful of typists per
/// room, where a binary search over a vector is as fast, and every `BTreeMap<K, V>` adds
/// several kilobytes of node-balancing code to the wasm for each `V`. The names live in their
/// own vector so that the search is one function for every `V`.
#[derive(Debug)]
pub(crate) struct NameMap<V> {
    names: Vec<String>,
    values: Vec<V>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            names: Vec::new(),
            values: Vec::new(),
        }
    }
}

/// Where `name` is in the sorted `names`, or where it would go.
fn search(names: &[String], name: &str) -> Result<usize, usize> {
    names.binary_search_by(|n| n.as_str().cmp(name))
}

impl<V> NameMap<V> {
    pub(crate) fn get(&self, name: &str) -> Option<&V> {
        let at = search(&self.names, name).ok()?;
        self.values.get(at)
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        let at = search(&self.names, name).ok()?;
        self.values.get_mut(at)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        search(&self.names, name).is_ok()
    }

    /// Set `name` to `value`. Returns whether `name` is new.
    pub(crate) fn insert(&mut self, name: &str, value: V) -> bool {
        match search(&self.names, name) {
            Ok(at) => {
                if let Some(slot) = self.values.get_mut(at) {
                    *slot = value;
                }
                false
            }
            Err(at) => {
                self.names.insert(at, name.to_owned());
                self.values.insert(at, value);
                true
            }
        }
    }

    /// The value of `name`, inserted with `make` if it is missing (always `Some`: an
    /// `Option` rather than indexing keeps a panic path out of the wasm).
    pub(crate) fn get_or_insert_with(
        &mut self,
        name: &str,
        make: impl FnOnce() -> V,
    ) -> Option<&mut V> {
        let at = match search(&self.names, name) {
            Ok(at) => at,
            Err(at) => {
                self.names.insert(at, name.to_owned());
                self.values.insert(at, make());
                at
            }
        };
        self.values.get_mut(at)
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<V> {
        let at = search(&self.names, name).ok()?;
        self.names.remove(at);
        Some(self.values.remove(at))
    }

    /// Keep the entries for which `keep` answers true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&String, &mut V) -> bool) {
        let mut at = 0;
        while let (Some(name), Some(value)) = (self.names.get(at), self.values.get_mut(at)) {
            if keep(name, value) {
                at += 1;
            } else {
                self.names.remove(at);
                self.values.remove(at);
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.names.iter().zip(&self.values)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.names.iter().zip(&mut self.values)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.values.iter_mut()
    }

    /// The names, in order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The names, in order, dropping the values.
    pub(crate) fn into_names(self) -> Vec<String> {
        self.names
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.names.clear();
        self.values.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_names_in_order_like_a_btree_map() {
        let mut map = NameMap::default();
        let mut model = std::collections::BTreeMap::new();
        for (i, name) in ["m", "b", "z", "a", "b", "q", "", "m", "zz", "B"]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                map.insert(name, i),
                model.insert(name.to_owned(), i).is_none()
            );
        }
        assert!(map.iter().map(|(n, v)| (n.clone(), *v)).eq(model.clone()));
        assert_eq!(map.remove("q"), model.remove("q"));
        assert_eq!(map.remove("nope"), None);
        map.retain(|_, v| *v % 2 == 0);
        model.retain(|_, v| *v % 2 == 0);
        assert!(map.iter().map(|(n, v)| (n.clone(), *v)).eq(model.clone()));
        assert_eq!(map.len(), model.len());
        *map.get_or_insert_with("c", || 100).unwrap() += 1;
        *map.get_or_insert_with("c", || 200).unwrap() += 1;
        assert_eq!(map.get("c"), Some(&102));
        assert!(map.contains("c") && !map.contains("d"));
        let names: Vec<&str> = map.names().iter().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
