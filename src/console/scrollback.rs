//! A live list that follows its tail or stays frozen where the operator
//! scrolled: the calls pane and the log pane are both one. Rows live in a
//! bounded [`Ring`]; a filter picks the rows shown; the selection and the
//! top of the view are remembered by sequence number, so they stay on the
//! same rows while new ones arrive and old ones are forgotten.

use std::collections::VecDeque;

use crate::ring::Ring;

/// Which rows a scrollback shows.
pub trait RowFilter<T> {
    fn matches(&self, row: &T) -> bool;
}

/// No filter: every row shows.
impl<T> RowFilter<T> for () {
    fn matches(&self, _: &T) -> bool {
        true
    }
}

/// The rows kept, the filter, and where the view is.
#[derive(Debug)]
pub struct Scrollback<T, F = ()> {
    rows: Ring<T>,
    /// Sequence numbers of the rows that pass the filter, oldest first.
    visible: VecDeque<u64>,
    filter: F,
    /// Follow mode: the view stays on the newest row.
    pub follow: bool,
    /// The selected row (a sequence number) when frozen.
    selected: Option<u64>,
    /// The top row of the view (a sequence number) when frozen.
    top: Option<u64>,
}

impl<T, F: RowFilter<T> + Default> Scrollback<T, F> {
    /// An empty scrollback keeping at most `capacity` rows, following.
    pub fn new(capacity: usize) -> Self {
        Self {
            rows: Ring::new(capacity),
            visible: VecDeque::new(),
            filter: F::default(),
            follow: true,
            selected: None,
            top: None,
        }
    }
}

impl<T, F: RowFilter<T>> Scrollback<T, F> {
    /// Keep `row`, forgetting the oldest when full.
    pub fn push(&mut self, row: T) {
        let first = self.rows.first_seq();
        let passes = self.filter.matches(&row);
        let seq = self.rows.push(row);
        if self.rows.first_seq() > first && self.visible.front() == Some(&first) {
            self.visible.pop_front();
        }
        if passes {
            self.visible.push_back(seq);
        }
    }

    /// Forget every row and keep `rows` instead (a server's fresh picture);
    /// the view follows again, the filter stays.
    pub fn replace(&mut self, rows: impl IntoIterator<Item = T>) {
        self.clear();
        for row in rows {
            self.push(row);
        }
    }

    /// Forget every row (the view only) and follow.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.visible.clear();
        self.follow_tail();
    }

    pub fn filter(&self) -> &F {
        &self.filter
    }

    /// Show only the rows `filter` matches; stay on the selected row if it
    /// still shows, else follow.
    pub fn set_filter(&mut self, filter: F) {
        self.filter = filter;
        let first = self.rows.first_seq();
        self.visible = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, row)| self.filter.matches(row))
            .map(|(i, _)| first + i as u64)
            .collect();
        self.top = None;
        self.selected = self
            .selected
            .filter(|seq| self.visible.binary_search(seq).is_ok());
        if self.selected.is_none() {
            self.follow = true;
        }
    }

    /// How many rows are kept, and how many pass the filter.
    pub fn counts(&self) -> (usize, usize) {
        (self.rows.len(), self.visible.len())
    }

    /// The position in the filtered rows of `seq`, or of the first row after it.
    fn position(&self, seq: u64) -> usize {
        match self.visible.binary_search(&seq) {
            Ok(i) | Err(i) => i,
        }
    }

    /// The selected position among the filtered rows (the newest when following).
    pub fn selected_index(&self) -> Option<usize> {
        let last = self.visible.len().checked_sub(1)?;
        match (self.follow, self.selected) {
            (false, Some(seq)) => Some(self.position(seq).min(last)),
            _ => Some(last),
        }
    }

    pub fn selected_row(&self) -> Option<&T> {
        let index = self.selected_index()?;
        self.rows.get(*self.visible.get(index)?)
    }

    /// The first filtered position shown in a view of `height` rows.
    pub fn top_index(&self, height: usize) -> usize {
        let height = height.max(1);
        let bottom_top = self.visible.len().saturating_sub(height);
        if self.follow {
            return bottom_top;
        }
        let selected = self.selected_index().unwrap_or(0);
        let top = self.top.map_or(bottom_top, |seq| self.position(seq));
        scrolled_to_show(top, selected, height).min(bottom_top)
    }

    /// The rows of a view of `height` rows: (position, row).
    pub fn visible_rows(&self, height: usize) -> impl Iterator<Item = (usize, &T)> {
        let top = self.top_index(height);
        self.visible
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .filter_map(|(i, &seq)| self.rows.get(seq).map(|row| (i, row)))
    }

    /// Move the selection by `delta` rows in a view of `height`; moving
    /// freezes the view (only `follow_tail` follows again).
    pub fn move_selection(&mut self, delta: isize, height: usize) {
        let Some(current) = self.selected_index() else {
            return;
        };
        let top = self.top_index(height);
        let last = self.visible.len() - 1;
        let target = current.saturating_add_signed(delta).min(last);
        self.follow = false;
        self.selected = self.visible.get(target).copied();
        let top = scrolled_to_show(top, target, height.max(1));
        self.top = self.visible.get(top).copied();
    }

    /// Go to the oldest row and freeze.
    pub fn select_first(&mut self) {
        self.follow = false;
        self.selected = self.visible.front().copied();
        self.top = self.selected;
    }

    /// Go to the newest row and follow.
    pub fn follow_tail(&mut self) {
        self.follow = true;
        self.selected = None;
        self.top = None;
    }

    /// Follow, or freeze the view where it is.
    pub fn toggle_follow(&mut self, height: usize) {
        if self.follow {
            let top = self.top_index(height);
            self.selected = self.visible.back().copied();
            self.top = self.visible.get(top).copied();
            self.follow = false;
        } else {
            self.follow_tail();
        }
    }
}

/// The top of a view of `height` rows starting at `top`, moved as little as
/// possible so that row `index` shows.
fn scrolled_to_show(top: usize, index: usize, height: usize) -> usize {
    if index < top {
        index
    } else if index >= top + height {
        index + 1 - height
    } else {
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Even numbers only.
    #[derive(Default)]
    struct Even(bool);

    impl RowFilter<u64> for Even {
        fn matches(&self, row: &u64) -> bool {
            !self.0 || row.is_multiple_of(2)
        }
    }

    fn shown<F: RowFilter<u64>>(list: &Scrollback<u64, F>, height: usize) -> Vec<u64> {
        list.visible_rows(height).map(|(_, row)| *row).collect()
    }

    #[test]
    fn the_ring_forgets_the_oldest_rows() {
        let mut list: Scrollback<u64> = Scrollback::new(3);
        for row in 1..=5 {
            list.push(row);
        }
        assert_eq!(shown(&list, 10), [3, 4, 5]);
        assert_eq!(list.counts(), (3, 3));
    }

    #[test]
    fn following_shows_the_tail_and_freezing_stays_put() {
        let mut list: Scrollback<u64> = Scrollback::new(100);
        for row in 1..=10 {
            list.push(row);
        }
        assert_eq!(shown(&list, 3), [8, 9, 10]);
        list.move_selection(-1, 3);
        assert!(!list.follow);
        assert_eq!(list.selected_row(), Some(&9));
        list.push(11);
        assert_eq!(shown(&list, 3), [8, 9, 10]);
        list.toggle_follow(3);
        assert_eq!(shown(&list, 3), [9, 10, 11]);
        list.toggle_follow(3);
        assert!(!list.follow);
        assert_eq!(list.selected_row(), Some(&11));
    }

    #[test]
    fn a_frozen_view_survives_the_ring_moving_under_it() {
        let mut list: Scrollback<u64> = Scrollback::new(5);
        for row in 1..=5 {
            list.push(row);
        }
        list.select_first();
        for row in 6..=8 {
            list.push(row);
        }
        // Row 1 is gone; the selection lands on the oldest kept.
        assert_eq!(list.selected_row(), Some(&4));
    }

    #[test]
    fn a_filter_narrows_the_rows_and_keeps_the_selection_if_it_shows() {
        let mut list: Scrollback<u64, Even> = Scrollback::new(4);
        for row in 1..=6 {
            list.push(row);
        }
        list.move_selection(-1, 10);
        assert_eq!(list.selected_row(), Some(&5));
        list.set_filter(Even(true));
        assert_eq!(shown(&list, 10), [4, 6]);
        // 5 does not show: back to following.
        assert!(list.follow);
        list.push(7);
        list.push(8);
        // 3 and 4 were pushed out of the ring.
        assert_eq!(shown(&list, 10), [6, 8]);
        assert_eq!(list.counts(), (4, 2));
        list.move_selection(-1, 10);
        list.set_filter(Even(false));
        assert_eq!(list.selected_row(), Some(&6));
    }

    #[test]
    fn replacing_keeps_the_filter_and_follows() {
        let mut list: Scrollback<u64, Even> = Scrollback::new(10);
        list.set_filter(Even(true));
        list.push(2);
        list.select_first();
        list.replace([10, 11, 12]);
        assert!(list.follow);
        assert_eq!(shown(&list, 10), [10, 12]);
        list.clear();
        assert_eq!(list.counts(), (0, 0));
        assert_eq!(list.selected_row(), None);
    }
}
