//! Subnormal floats flushed to zero while the CPU kernel runs on a thread.
//!
//! RNNPool-Face-C feeds mean-subtracted pixels (about -128..128) straight into RNN1, so many
//! of its gates saturate: sigmoid(-90) is 8e-40, a subnormal f32, and so are the products the
//! backward pass forms from such gates. x86 CPUs take a microcode assist, on the order of a
//! hundred cycles, for a vector operation whose result is subnormal. Measured on
//! the layer alone (`cargo bench -p rnnpool-core --bench rnnpool -- --case face_c_train
//! --threads 1 --spread S`), without the flush: 54-58 ms forward + backward for inputs of spread
//! 1, 73-77 ms for spread 60 (the detectors' pixels); with it, one time for both spreads.
//! Values below 1.2e-38 change nothing a model can learn from; Vulkan lets GPU shaders flush
//! them in f32 arithmetic, and TensorFlow's CPU thread pools and PyTorch's
//! `torch.set_flush_denormal(True)` flush them too.
//!
//! Only flush-to-zero is set, which turns results that would be subnormal into zeros; inputs
//! are read as they are. Rust's documentation of `_mm_setcsr` names changing the rounding mode,
//! the exception masks or denormals-are-zero undefined behaviour (the compiler assumes their
//! defaults), and flush-to-zero alone is as fast as both (`face_c_train`, spread 60, one thread,
//! alternated twice: 69.0-69.7 ms with it alone, 68.2-68.7 with both, 87.7-88.5 with neither).
//! Only the kernel's own work runs flushed, and the caller's mode comes back when the guard is
//! dropped. Every block runs under the guard, so results stay bit-identical for any thread
//! count. Other architectures keep subnormals.

/// Sets MXCSR's flush-to-zero bit (15) on this thread until dropped, then restores the
/// previous mode.
pub(crate) struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
const FTZ: u32 = 1 << 15;

impl FlushDenormals {
    pub(crate) fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = mxcsr();
            set_mxcsr(saved | FTZ);
            Self { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self {}
        }
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        set_mxcsr(self.saved);
    }
}

/// The thread's floating-point mode: MXCSR without its sticky exception flags (bits 0-5),
/// which any arithmetic may set.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn mode() -> u32 {
    mxcsr() & !0x3f
}

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut value = 0u32;
    // SAFETY: stores the 32-bit control register into `value`, a valid, writable u32.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags)) };
    value
}

#[cfg(target_arch = "x86_64")]
fn set_mxcsr(value: u32) {
    // SAFETY: loads a value read from MXCSR with at most FTZ added, so no reserved bit is set
    // (which would fault); every x86-64 CPU has FTZ.
    unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, preserves_flags, readonly)) };
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// 1e-30 * 1e-10 is 1e-40, a subnormal: kept without the guard, zero under it.
    fn product() -> f32 {
        black_box(1e-30f32) * black_box(1e-10f32)
    }

    #[test]
    fn flushes_inside_and_restores_the_mode_after() {
        let before = mode();
        assert!(product() > 0.0, "subnormals are flushed before the guard");
        {
            let _flush = FlushDenormals::new();
            assert_eq!(mode(), before | FTZ);
            assert_eq!(product(), 0.0);
            // Subnormal inputs are read as they are (no denormals-are-zero).
            assert!(black_box(1e-40f32) * black_box(1e30f32) > 0.0);
        }
        assert_eq!(mode(), before);
        assert!(product() > 0.0);
    }
}
