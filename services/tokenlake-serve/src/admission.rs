//! How many streams may be open at once: on the whole server (each holds a producer thread
//! and up to `limits.prefetch_bytes` of batches) and per bearer token (so that one tenant's
//! runaway job leaves room for the others). A stream holds its [`Ticket`] until its producer
//! ends; a request beyond either bound is refused at once with the bound's config key. A token
//! may also stream from only so many distinct plans at once (`limits.max_plans_per_token`):
//! plans that streams read cannot be closed, so without it one token could hold every one of
//! the server's `limits.max_plans` and refuse everyone else's new plans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::{Code, Status};

use crate::auth::Caller;
use crate::error::status;

#[derive(Default)]
pub struct StreamAdmission {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_caller: HashMap<Caller, usize>,
    /// Per caller, the plans its streams read and how many streams read each.
    plans: HashMap<Caller, HashMap<String, usize>>,
}

/// An admitted stream's place; given back when dropped.
pub struct Ticket {
    admission: Arc<StreamAdmission>,
    caller: Caller,
    plan: Option<String>,
}

impl StreamAdmission {
    /// A place for one more stream of `caller`, or RESOURCE_EXHAUSTED naming the bound.
    pub fn admit(
        self: &Arc<Self>,
        caller: Caller,
        max_total: usize,
        max_per_caller: usize,
    ) -> Result<Ticket, Status> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= max_total {
            return Err(status(
                Code::ResourceExhausted,
                format!(
                    "this server has {} streams open, the most it serves at once \
                     (limits.max_streams); try again when one ends",
                    open.total
                ),
            ));
        }
        let mine = open.by_caller.get(&caller).copied().unwrap_or(0);
        if mine >= max_per_caller {
            return Err(status(
                Code::ResourceExhausted,
                format!(
                    "token {:?} has {mine} streams open, the most one token may \
                     (limits.max_streams_per_token); try again when one ends",
                    caller.0
                ),
            ));
        }
        open.total += 1;
        *open.by_caller.entry(caller.clone()).or_insert(0) += 1;
        metrics::gauge!("tokenlake_streams_active").increment(1.0);
        metrics::counter!("tokenlake_streams_total").increment(1);
        Ok(Ticket {
            admission: self.clone(),
            caller,
            plan: None,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Ticket {
    /// Records that the stream reads `plan`; refused when its caller already streams from
    /// `max_plans` other plans.
    pub fn read_plan(&mut self, plan: &str, max_plans: usize) -> Result<(), Status> {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mine = open.plans.entry(self.caller.clone()).or_default();
        if !mine.contains_key(plan) && mine.len() >= max_plans {
            return Err(status(
                Code::ResourceExhausted,
                format!(
                    "token {:?} streams from {} plans, the most one token may at once \
                     (limits.max_plans_per_token); end a job's streams first",
                    self.caller.0,
                    mine.len()
                ),
            ));
        }
        *mine.entry(plan.to_string()).or_insert(0) += 1;
        self.plan = Some(plan.to_string());
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = &self.plan
            && let Some(mine) = open.plans.get_mut(&self.caller)
        {
            if let Some(n) = mine.get_mut(plan) {
                *n -= 1;
                if *n == 0 {
                    mine.remove(plan);
                }
            }
            if mine.is_empty() {
                open.plans.remove(&self.caller);
            }
        }
        open.total -= 1;
        if let Some(n) = open.by_caller.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.by_caller.remove(&self.caller);
            }
        }
        metrics::gauge!("tokenlake_streams_active").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_bounded_per_server_and_per_token_and_come_back_when_they_end() {
        let admission = Arc::new(StreamAdmission::default());
        let a = || Caller("a".into());
        let first = admission.admit(a(), 3, 2).unwrap();
        let _second = admission.admit(a(), 3, 2).unwrap();
        let err = admission.admit(a(), 3, 2).err().unwrap();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(
            err.message().contains("limits.max_streams_per_token"),
            "{err}"
        );
        let _third = admission.admit(Caller("b".into()), 3, 2).unwrap();
        let err = admission.admit(Caller("c".into()), 3, 2).err().unwrap();
        assert!(err.message().contains("(limits.max_streams)"), "{err}");
        drop(first);
        assert_eq!(admission.open(), 2);
        admission.admit(a(), 3, 2).unwrap();
    }

    #[test]
    fn a_token_streams_from_a_bounded_number_of_plans() {
        let admission = Arc::new(StreamAdmission::default());
        let a = || Caller("a".into());
        let mut one = admission.admit(a(), 10, 10).unwrap();
        one.read_plan("p1", 2).unwrap();
        let mut two = admission.admit(a(), 10, 10).unwrap();
        two.read_plan("p1", 2).unwrap(); // the same plan again costs nothing
        let mut three = admission.admit(a(), 10, 10).unwrap();
        three.read_plan("p2", 2).unwrap();
        let mut four = admission.admit(a(), 10, 10).unwrap();
        let err = four.read_plan("p3", 2).unwrap_err();
        assert!(
            err.message().contains("limits.max_plans_per_token"),
            "{err}"
        );
        // Another token is not held back by this one's plans.
        let mut other = admission.admit(Caller("b".into()), 10, 10).unwrap();
        other.read_plan("p3", 2).unwrap();
        drop((one, two));
        four.read_plan("p3", 2).unwrap();
    }
}
