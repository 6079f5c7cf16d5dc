//! A bounded ring of the most recent items, each numbered in the order it
//! arrived. The server's log lines and call details, and the console's call
//! log and log pane all keep "the last N of something" and need to ask for
//! what is new since they last looked: one type serves them all.

use std::collections::VecDeque;

/// The last `capacity` items pushed, oldest first. Every item pushed gets a
/// sequence number (0, 1, 2, …) that stays its own after older items are
/// forgotten, so a reader can remember where it was.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    /// The sequence number of `items[0]`.
    first: u64,
    capacity: usize,
}

impl<T> Ring<T> {
    /// An empty ring that keeps at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            first: 0,
            capacity: capacity.max(1),
        }
    }

    /// Keep `item`, forgetting the oldest when full; its sequence number.
    pub fn push(&mut self, item: T) -> u64 {
        if self.items.len() == self.capacity {
            self.items.pop_front();
            self.first += 1;
        }
        self.items.push_back(item);
        self.end_seq() - 1
    }

    /// Forget every item; numbering goes on where it was.
    pub fn clear(&mut self) {
        self.first = self.end_seq();
        self.items.clear();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sequence number of the oldest item kept (of the next one when empty).
    pub fn first_seq(&self) -> u64 {
        self.first
    }

    /// The sequence number the next item pushed will get.
    pub fn end_seq(&self) -> u64 {
        self.first + self.items.len() as u64
    }

    /// The item numbered `seq`, if it is still kept.
    pub fn get(&self, seq: u64) -> Option<&T> {
        let index = seq.checked_sub(self.first)?;
        self.items.get(usize::try_from(index).ok()?)
    }

    /// The items from `seq` on (from the oldest kept if `seq` was forgotten).
    pub fn since(&self, seq: u64) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        let skip = seq.saturating_sub(self.first).min(self.items.len() as u64) as usize;
        self.items.range(skip..)
    }

    /// Every item kept, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    /// The newest item.
    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_items_are_forgotten_and_numbers_stay() {
        let mut ring = Ring::new(3);
        for i in 0..5 {
            assert_eq!(ring.push(i * 10), i);
        }
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [20, 30, 40]);
        assert_eq!((ring.first_seq(), ring.end_seq()), (2, 5));
        assert_eq!(ring.get(1), None);
        assert_eq!(ring.get(3), Some(&30));
        assert_eq!(ring.get(5), None);
    }

    #[test]
    fn readers_ask_for_what_is_new() {
        let mut ring = Ring::new(3);
        ring.push("a");
        let seen = ring.end_seq();
        ring.push("b");
        ring.push("c");
        assert_eq!(ring.since(seen).copied().collect::<Vec<_>>(), ["b", "c"]);
        // A reader that fell behind gets what is left.
        ring.push("d");
        ring.push("e");
        assert_eq!(
            ring.since(seen).copied().collect::<Vec<_>>(),
            ["c", "d", "e"]
        );
        assert_eq!(ring.since(ring.end_seq()).count(), 0);
    }

    #[test]
    fn clearing_keeps_the_numbering() {
        let mut ring = Ring::new(4);
        ring.push(1);
        ring.push(2);
        ring.clear();
        assert!(ring.is_empty());
        assert_eq!(ring.first_seq(), 2);
        assert_eq!(ring.push(3), 2);
        assert_eq!(ring.last(), Some(&3));
        assert_eq!(Ring::<u8>::new(0).capacity(), 1);
    }
}
