//! The training binaries' allocator settings.
//!
//! mimalloc hands memory that stayed free for a while back to the kernel (its "purge"). A training
//! step frees its activation buffers after the backward pass and allocates them again in the
//! next forward pass, so with purging every step pays for faulting in and zeroing its whole
//! working set again (measured on MobileNetV2-RNNPool, batch 32 at 96x96: 21,128 page faults and
//! 12 % more CPU time over 11 steps than with purging off). The process keeps its peak instead,
//! which is what it needs on the next step anyway. `MIMALLOC_PURGE_DELAY` in the environment
//! still chooses otherwise.

use std::os::raw::{c_int, c_long};

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (libmimalloc-sys names the options
/// around it but not this one).
const PURGE_DELAY: c_int = 15;

/// The option's defaults in libmimalloc-sys's bundled mimalloc (v2: 10 ms, v3: 1 s), checked
/// before it is changed, so that a mimalloc whose options are numbered otherwise is left alone.
const PURGE_DELAY_DEFAULTS: [c_long; 2] = [10, 1000];

/// The environment variables through which a user sets the purge delay (the second is its
/// older name); either one set is left to rule.
const PURGE_DELAY_VARS: [&str; 2] = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"];

/// Turns mimalloc's purging of free memory off for this process, unless the user set its delay.
/// Call it first thing in `main` of a binary whose global allocator is `mimalloc::MiMalloc`;
/// returns whether it did.
pub fn keep_freed_memory() -> bool {
    if PURGE_DELAY_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        tracing::debug!("mimalloc's purge delay is set in the environment; left as it is");
        return false;
    }
    // SAFETY: option calls take any option number below mimalloc's last and only read or write
    // its option table; 15 is inside it in both of libmimalloc-sys's bundled versions.
    unsafe {
        if !PURGE_DELAY_DEFAULTS.contains(&libmimalloc_sys::mi_option_get(PURGE_DELAY)) {
            tracing::debug!("mimalloc's purge delay option is not where it was; left as it is");
            return false;
        }
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number still names the purge delay: the default it finds is mimalloc's.
    #[test]
    fn the_purge_delay_option_is_found_and_turned_off() {
        assert!(keep_freed_memory());
        // SAFETY: as in keep_freed_memory.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, -1);
    }
}
