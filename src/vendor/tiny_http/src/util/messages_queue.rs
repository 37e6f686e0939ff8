//! The queue between connection threads and workers.
//!
//! Patched for auth-service (src/vendor/README.md): the number of waiting threads is kept with
//! the queue, so a push wakes a thread only when one waits (a condvar notify is a futex
//! syscall even without waiters), and it wakes it after unlocking, so the woken thread does
//! not run straight into the pusher's lock. Requests come in two lanes: urgent ones (health,
//! metrics: chosen by the server's `urgent` predicate) are taken before all others, and a
//! thread may wait on the urgent lane alone, so they never wait behind a full pool.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

enum Control<T> {
    Elem(T),
    Unblock,
}

/// Which lanes a popping thread takes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lanes {
    /// Urgent first, then the rest.
    All,
    /// Urgent requests only.
    Urgent,
}

pub struct MessagesQueue<T>
where
    T: Send,
{
    queue: Mutex<Queue<T>>,
    /// Threads taking from both lanes wait here.
    any: Condvar,
    /// Threads taking urgent requests only wait here.
    urgent: Condvar,
}

struct Queue<T> {
    urgent: VecDeque<T>,
    items: VecDeque<Control<T>>,
    waiting_any: usize,
    waiting_urgent: usize,
}

impl<T> Queue<T> {
    fn pop(&mut self, lanes: Lanes) -> Option<Control<T>> {
        if let Some(value) = self.urgent.pop_front() {
            return Some(Control::Elem(value));
        }
        match lanes {
            Lanes::All => self.items.pop_front(),
            Lanes::Urgent => None,
        }
    }
}

impl<T> MessagesQueue<T>
where
    T: Send,
{
    pub fn with_capacity(capacity: usize) -> Arc<MessagesQueue<T>> {
        Arc::new(MessagesQueue {
            queue: Mutex::new(Queue {
                urgent: VecDeque::new(),
                items: VecDeque::with_capacity(capacity),
                waiting_any: 0,
                waiting_urgent: 0,
            }),
            any: Condvar::new(),
            urgent: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes an element to the queue.
    pub fn push(&self, value: T) {
        self.push_control(Control::Elem(value));
    }

    /// Pushes an element that is taken before every element of the normal lane.
    pub fn push_urgent(&self, value: T) {
        let mut queue = self.lock();
        queue.urgent.push_back(value);
        let (urgent_waits, any_waits) = (queue.waiting_urgent > 0, queue.waiting_any > 0);
        drop(queue);
        if urgent_waits {
            self.urgent.notify_one();
        } else if any_waits {
            self.any.notify_one();
        }
    }

    /// Unblock one thread stuck in pop loop.
    pub fn unblock(&self) {
        self.push_control(Control::Unblock);
    }

    fn push_control(&self, control: Control<T>) {
        let mut queue = self.lock();
        queue.items.push_back(control);
        let someone_waits = queue.waiting_any > 0;
        drop(queue);
        if someone_waits {
            self.any.notify_one();
        }
    }

    /// Pops an element. Blocks until one is available.
    /// Returns None in case unblock() was issued.
    pub fn pop(&self) -> Option<T> {
        let mut queue = self.lock();
        loop {
            match queue.pop(Lanes::All) {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }
            queue.waiting_any += 1;
            queue = self.any.wait(queue).unwrap_or_else(|e| e.into_inner());
            queue.waiting_any -= 1;
        }
    }

    /// Tries to pop an element without blocking.
    pub fn try_pop(&self, lanes: Lanes) -> Option<T> {
        match self.lock().pop(lanes) {
            Some(Control::Elem(value)) => Some(value),
            Some(Control::Unblock) | None => None,
        }
    }

    /// Pops an element from `lanes`, waiting at most `timeout`; `None` on timeout or when
    /// unblock() was issued.
    pub fn pop_timeout(&self, timeout: Duration, lanes: Lanes) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut queue = self.lock();
        loop {
            match queue.pop(lanes) {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                return None;
            }
            // Patched for auth-service: waits for what is left, not the whole timeout again.
            let condvar = match lanes {
                Lanes::All => &self.any,
                Lanes::Urgent => &self.urgent,
            };
            match lanes {
                Lanes::All => queue.waiting_any += 1,
                Lanes::Urgent => queue.waiting_urgent += 1,
            }
            queue = condvar
                .wait_timeout(queue, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            match lanes {
                Lanes::All => queue.waiting_any -= 1,
                Lanes::Urgent => queue.waiting_urgent -= 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_requests_go_first_and_urgent_waiters_take_nothing_else() {
        let queue = MessagesQueue::with_capacity(4);
        queue.push(1);
        queue.push_urgent(2);
        assert_eq!(queue.try_pop(Lanes::Urgent), Some(2));
        assert_eq!(queue.try_pop(Lanes::Urgent), None);
        assert_eq!(queue.pop_timeout(Duration::from_millis(5), Lanes::Urgent), None);
        assert_eq!(queue.pop_timeout(Duration::from_millis(5), Lanes::All), Some(1));
    }
}
