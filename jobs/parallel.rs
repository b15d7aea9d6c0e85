//! CPU-bound maps over a dedupe chunk, split over the machine's cores.
//!
//! A dedupe chunk alternates between waiting for Postgres and computing in
//! the worker (normalizing and keying 5,000 rows, preparing the contacts
//! they may join: about five per row on a big corpus), and while the worker
//! computes, Postgres waits. Splitting that work over the cores shortens
//! the wait; the results keep the input's order, so the plan that follows
//! is the same whatever the core count.

/// `f` over `items`, in order, on up to all cores. Inputs under
/// [`SPLIT_FROM`] items run on the calling thread: a thread costs more
/// than it saves there.
pub fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < SPLIT_FROM {
        return items.iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(per_thread)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Vec<U>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

pub const SPLIT_FROM: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_at_every_size() {
        for n in [0, 1, SPLIT_FROM - 1, SPLIT_FROM, 10_001] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(
                map(&items, |i| i * 2),
                items.iter().map(|i| i * 2).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    #[should_panic(expected = "item 300")]
    fn a_panic_in_a_thread_reaches_the_caller() {
        let items: Vec<usize> = (0..1_000).collect();
        map(&items, |i| assert_ne!(*i, 300, "item 300"));
    }
}
