//! Runs a kernel body compiled for the widest vector unit of the CPU (AVX-512 or AVX2 on
//! x86-64, checked at run time), so that its auto-vectorised loops run 16 or 8 floats wide
//! instead of SSE2's 4. Only the vector width changes: Rust never fuses a multiply and an add
//! unless asked, and every reduction here sums fixed lanes in code, so the results are the same
//! bits on every CPU.

/// A kernel body. `run` must be `#[inline(always)]` (and call only `#[inline(always)]`
/// functions in its loops) so that it is compiled into the dispatcher's target features.
pub trait Kernel {
    /// What the body returns.
    type Output;
    /// The body.
    fn run(self) -> Self::Output;
}

/// `k.run()` through the widest instantiation the CPU supports.
#[inline]
pub fn dispatch<K: Kernel>(k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (and so AVX2 and FMA), checked just above.
            return unsafe { avx512(k) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { avx2(k) };
        }
    }
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn avx512<K: Kernel>(k: K) -> K::Output {
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<K: Kernel>(k: K) -> K::Output {
    k.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sum<'a>(&'a [f32]);

    impl Kernel for Sum<'_> {
        type Output = f32;
        #[inline(always)]
        fn run(self) -> f32 {
            let mut lanes = [0.0f32; 8];
            for c in self.0.chunks_exact(8) {
                for k in 0..8 {
                    lanes[k] += c[k];
                }
            }
            lanes.iter().sum()
        }
    }

    #[test]
    fn every_width_gives_the_same_bits() {
        let v: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let plain = Sum(&v).run();
        assert_eq!(dispatch(Sum(&v)).to_bits(), plain.to_bits());
    }
}
