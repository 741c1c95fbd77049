//! Failed sign-in attempts per account: after `limit` failures, the account refuses sign-ins
//! until `lockout` has passed since the last failure, without spending a password hash on them.
//! Kept in memory per replica (each replica counts its own attempts), bounded in size.

use std::time::Duration;

use crate::cache::TtlCache;

pub struct LoginThrottle {
    failures: TtlCache<String, u32>,
    limit: u32,
    lockout: Duration,
}

impl LoginThrottle {
    /// At most `limit` failures; each failure is remembered for `lockout`.
    pub fn new(limit: u32, lockout: Duration) -> Self {
        Self { failures: TtlCache::new(lockout, 100_000), limit: limit.max(1), lockout }
    }

    /// `Some(wait)` when `key` is locked out.
    pub fn locked(&self, key: &str) -> Option<Duration> {
        let failures = self.failures.get(&key.to_owned())?;
        (failures >= self.limit).then_some(self.lockout)
    }

    pub fn failed(&self, key: &str) {
        let key = key.to_owned();
        let failures = self.failures.get(&key).unwrap_or(0).saturating_add(1);
        self.failures.insert(key, failures);
    }

    pub fn succeeded(&self, key: &str) {
        self.failures.remove(&key.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_locks_after_the_limit_and_a_success_clears_it() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            throttle.failed("acme:ann");
        }
        assert_eq!(throttle.locked("acme:ann"), None);
        throttle.succeeded("acme:ann");
        for _ in 0..3 {
            throttle.failed("acme:ann");
        }
        assert_eq!(throttle.locked("acme:ann"), Some(Duration::from_secs(60)));
        assert_eq!(throttle.locked("acme:bob"), None, "per account");
    }

    #[test]
    fn the_lockout_ends() {
        let throttle = LoginThrottle::new(1, Duration::from_millis(50));
        throttle.failed("k");
        assert!(throttle.locked("k").is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(throttle.locked("k"), None);
    }
}
