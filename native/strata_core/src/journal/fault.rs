//! Fault injection for tests: makes the Nth file-system step of a kind fail as if the OS
//! had returned an error, so that each failure path of the journal can be driven. Compiled
//! to nothing outside tests and the `fault` feature.

use std::path::Path;

use super::StoreError;

#[cfg(any(test, feature = "fault"))]
mod imp {
    use super::*;
    use parking_lot::Mutex;
    use std::path::PathBuf;

    struct Fault {
        under: PathBuf,
        step: &'static str,
        countdown: u64,
        errno: i32,
    }

    /// Armed faults; each applies to paths under its directory only, so that tests running
    /// in parallel do not trip each other's.
    static PLAN: Mutex<Vec<Fault>> = Mutex::new(Vec::new());

    /// Arms a fault: the `nth` (from 1) next check of `step` on a path under `under` fails
    /// with `errno`.
    pub fn arm(under: &Path, step: &'static str, nth: u64, errno: i32) {
        PLAN.lock().push(Fault {
            under: under.to_path_buf(),
            step,
            countdown: nth,
            errno,
        });
    }

    /// Slow steps: every check of the step under the directory sleeps this long (a slow
    /// disk), until disarmed.
    static SLOW: Mutex<Vec<(PathBuf, &'static str, std::time::Duration)>> = Mutex::new(Vec::new());

    /// Makes every `step` on a path under `under` take `delay` (until disarmed).
    pub fn slow(under: &Path, step: &'static str, delay: std::time::Duration) {
        SLOW.lock().push((under.to_path_buf(), step, delay));
    }

    /// Disarms the faults under `under`; whether one had not fired.
    pub fn disarm(under: &Path) -> bool {
        SLOW.lock().retain(|(u, _, _)| u != under);
        let mut plan = PLAN.lock();
        let before = plan.len();
        plan.retain(|f| f.under != under);
        plan.len() != before
    }

    pub fn check(step: &'static str, path: &Path) -> Result<(), StoreError> {
        let delay = SLOW
            .lock()
            .iter()
            .find(|(under, s, _)| *s == step && path.starts_with(under))
            .map(|&(_, _, d)| d);
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        let mut plan = PLAN.lock();
        let Some(i) = plan
            .iter()
            .position(|f| f.step == step && path.starts_with(&f.under))
        else {
            return Ok(());
        };
        if plan[i].countdown > 1 {
            plan[i].countdown -= 1;
            return Ok(());
        }
        let errno = plan.remove(i).errno;
        let e = std::io::Error::from_raw_os_error(errno);
        Err(StoreError::Io {
            doing: step,
            path: path.to_path_buf(),
            errno: Some(errno),
            message: format!("{e} (injected)"),
        })
    }
}

#[cfg(any(test, feature = "fault"))]
pub use imp::{arm, check, disarm, slow};

/// Never fails outside tests.
#[cfg(not(any(test, feature = "fault")))]
#[inline(always)]
pub fn check(_step: &'static str, _path: &Path) -> Result<(), StoreError> {
    Ok(())
}
