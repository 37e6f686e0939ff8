//! Turns at the request queue: how many workers may take requests at once, and how a worker
//! about to block for long (a Kong call, a timed CPU profile) hands its turn to a reserve
//! worker so the queue keeps moving.
//!
//! The pool keeps as many turns as cores: more workers taking cache-hit requests only add
//! context switches (measured: 8 takers on 2 cores served about 20 % fewer requests than 2),
//! while the reserve workers exist for requests that block. Owns only the turn counter and a
//! thread-local "this worker holds a turn"; it must not be touched per request (a turn is
//! kept across requests) and must not know about tiny_http or handlers.

use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// A counting semaphore of turns at the queue.
pub struct Turns {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A turn held by this thread; dropping it (also when the thread exits) gives it back.
struct Held(Arc<Turns>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

impl Turns {
    pub fn new(count: usize) -> Arc<Turns> {
        Arc::new(Turns {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        })
    }

    /// Takes a turn for this thread, waiting at most `patience`; true when it holds one
    /// (also when it already did).
    pub fn take(self: &Arc<Turns>, patience: Duration) -> bool {
        if holds_turn() {
            return true;
        }
        let free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut free, _) = self
            .freed
            .wait_timeout_while(free, patience, |free| *free == 0)
            .unwrap_or_else(PoisonError::into_inner);
        if *free == 0 {
            return false;
        }
        *free -= 1;
        HELD.with(|held| *held.borrow_mut() = Some(Held(Arc::clone(self))));
        true
    }

    fn give_back(&self) {
        *self.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.freed.notify_one();
    }
}

/// True when this thread holds a turn.
pub fn holds_turn() -> bool {
    HELD.with(|held| held.borrow().is_some())
}

/// Gives this thread's turn back, if it holds one.
pub fn release_turn() {
    // Dropped outside the borrow: giving back takes the turns' lock.
    let held = HELD.with(|held| held.borrow_mut().take());
    drop(held);
}

/// Runs `work`, which may block for long, after handing this thread's turn (if any) to a
/// reserve worker. The worker takes a turn again before its next request.
pub fn section<T>(work: impl FnOnce() -> T) -> T {
    release_turn();
    work()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn a_blocking_section_hands_the_turn_to_another_thread() {
        let turns = Turns::new(1);
        assert!(turns.take(Duration::ZERO));
        assert!(holds_turn());
        let other = Arc::clone(&turns);
        let waiter = thread::spawn(move || other.take(Duration::from_secs(10)));
        // While this thread holds the only turn the other one waits; the section frees it,
        // and the other thread's exit gives it back.
        section(|| assert!(waiter.join().unwrap()));
        assert!(!holds_turn());
        assert!(turns.take(Duration::from_secs(10)));
        release_turn();
        assert!(!holds_turn());
    }

    #[test]
    fn without_a_turn_a_section_just_runs() {
        assert!(!holds_turn());
        assert_eq!(section(|| 7), 7);
    }
}
