//! Which part of a data-parallel job this process is: the whole job, or one rank of an MPI job
//! (`--features mpi`, started by `mpirun -np K`).
//!
//! Every rank holds the whole model and optimizer. Each micro-batch of the global sample order is
//! cut into K contiguous shards and rank r takes shard r, so the K ranks together see exactly
//! what one process sees. After forward and backward, one MPI all-reduce sums the gradients of
//! all ranks (flattened into one f32 buffer, not one call per tensor) and a second one sums the
//! step's loss figures and flags (seven numbers); every rank then applies the same optimizer step
//! to the same sums, so the weights stay identical without being broadcast. BatchNorm running
//! statistics are rank 0's, as PyTorch's DistributedDataParallel keeps rank 0's; rank 0 alone
//! evaluates and writes checkpoints, metrics and plots. A rank that dies takes the job down
//! (MPI's default error handler), and the last checkpoint resumes it.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
#[cfg(feature = "mpi")]
use mpi::traits::*;

use crate::error::TrainError;

/// This process's place in the job: rank 0 of 1 unless it is one rank of an MPI job.
#[derive(Default)]
pub struct Job {
    #[cfg(feature = "mpi")]
    mpi: Option<Mpi>,
}

#[cfg(feature = "mpi")]
struct Mpi {
    // Field order: the communicator goes before the universe, which finalises MPI when dropped.
    world: mpi::topology::SimpleCommunicator,
    _universe: mpi::environment::Universe,
}

/// What the ranks sum after each step, beside the gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Sum of the micro-batch shards' losses.
    pub loss: f64,
    /// Detection: sum of their localisation parts.
    pub loc: f64,
    /// Detection: sum of their classification parts.
    pub conf: f64,
    /// Micro-batch shards.
    pub shards: f64,
    /// Images.
    pub images: f64,
    /// Shards whose loss was not finite.
    pub non_finite: f64,
    /// Ranks asked to stop (a signal or the dashboard).
    pub stop: f64,
}

impl StepStats {
    /// Adds one micro-batch shard's losses over `images` images.
    pub fn add(&mut self, loss: f64, loc: Option<f64>, conf: Option<f64>, images: usize) {
        self.loss += loss;
        self.loc += loc.unwrap_or(0.0);
        self.conf += conf.unwrap_or(0.0);
        self.shards += 1.0;
        self.images += images as f64;
        self.non_finite += f64::from(u8::from(!loss.is_finite()));
    }

    /// The step's mean loss per micro-batch shard.
    pub fn mean_loss(&self) -> f64 {
        self.loss / self.shards.max(1.0)
    }

    fn to_array(self) -> [f64; 7] {
        [self.loss, self.loc, self.conf, self.shards, self.images, self.non_finite, self.stop]
    }

    fn from_array([loss, loc, conf, shards, images, non_finite, stop]: [f64; 7]) -> Self {
        Self { loss, loc, conf, shards, images, non_finite, stop }
    }
}

impl Job {
    /// Joins the MPI job this process was started in (`mpirun`; a job of one rank otherwise).
    /// Once per process, and held for as long as the process trains.
    #[cfg(feature = "mpi")]
    pub fn start() -> Result<Self, TrainError> {
        let universe =
            mpi::initialize().ok_or_else(|| TrainError::Mpi("already initialised in this process".into()))?;
        let world = universe.world();
        if world.size() > 1 && world.rank() == 0 {
            tracing::info!(ranks = world.size(), "MPI: data-parallel over {} ranks", world.size());
        }
        Ok(Self { mpi: Some(Mpi { world, _universe: universe }) })
    }

    /// A job of one process (without the `mpi` feature).
    #[cfg(not(feature = "mpi"))]
    pub fn start() -> Result<Self, TrainError> {
        Ok(Self::default())
    }

    /// This rank, from 0.
    pub fn rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.world.rank() as usize;
        }
        0
    }

    /// Ranks in the job.
    pub fn size(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.world.size() as usize;
        }
        1
    }

    /// Whether this rank evaluates and writes (rank 0).
    pub fn leads(&self) -> bool {
        self.rank() == 0
    }

    /// Prints `message` and ends every rank of the job (MPI_Abort), or this process alone.
    pub fn abort(&self, message: &str) -> ! {
        eprintln!("Error: {message}");
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            m.world.abort(1);
        }
        std::process::exit(1)
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            m.world.barrier();
        }
    }

    /// The shards of `micro` that hold samples: contiguous, the last ones shorter or missing
    /// when the ranks do not divide it. This rank's is `shards[rank]` when there is one.
    pub fn shards<'a>(&self, micro: &'a [usize]) -> Vec<&'a [usize]> {
        micro.chunks(micro.len().div_ceil(self.size()).max(1)).collect()
    }

    /// The sums of `stats` over all ranks.
    pub fn sum_stats(&self, stats: StepStats) -> StepStats {
        let mut total = stats.to_array();
        self.all_reduce(&stats.to_array(), &mut total);
        StepStats::from_array(total)
    }

    /// The sums over all ranks of `grads` (this rank's gradients of `net`, one set per local
    /// device, the first device's first; a parameter without a gradient counts as zeros), on
    /// the first device.
    pub fn sum_gradients(&self, net: &impl Module, grads: &[GradientsParams]) -> GradientsParams {
        let mut gather = Gather { grads, flat: Vec::new(), device: None };
        net.visit(&mut gather);
        let mut summed = gather.flat.clone();
        self.all_reduce(&gather.flat, &mut summed);
        let Some(device) = gather.device else { return GradientsParams::new() };
        let mut scatter = Scatter { flat: &summed, at: 0, device: &device, out: GradientsParams::new() };
        net.visit(&mut scatter);
        scatter.out
    }

    /// `out = sum over ranks of mine` (`out` already holds `mine`: one rank).
    #[allow(unused_variables)]
    fn all_reduce<T: mpi_equivalence::Element>(&self, mine: &[T], out: &mut [T]) {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            m.world.all_reduce_into(mine, out, mpi::collective::SystemOperation::sum());
        }
    }
}

/// The element types the job sums: MPI's equivalents where the feature is on.
mod mpi_equivalence {
    #[cfg(feature = "mpi")]
    pub trait Element: mpi::datatype::Equivalence + Copy {}
    #[cfg(not(feature = "mpi"))]
    pub trait Element: Copy {}
    impl Element for f32 {}
    impl Element for f64 {}
}

/// Flattens every float parameter's gradient, summed over the local devices, in visiting
/// order; zeros where no device has one, so every rank sends a buffer of the same layout.
struct Gather<'a> {
    grads: &'a [GradientsParams],
    flat: Vec<f32>,
    /// Where the first device's gradients are.
    device: Option<Device>,
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n = param.val().shape().num_elements();
        let start = self.flat.len();
        self.flat.resize(start + n, 0.0);
        for g in self.grads.iter().filter_map(|g| g.get::<D>(param.id)) {
            self.device.get_or_insert_with(|| g.device());
            for (acc, v) in self.flat[start..].iter_mut().zip(g.into_data().iter::<f32>()) {
                *acc += v;
            }
        }
    }
}

/// Cuts the summed buffer back into one gradient per float parameter, in the same order.
struct Scatter<'a> {
    flat: &'a [f32],
    at: usize,
    device: &'a Device,
    out: GradientsParams,
}

impl ModuleVisitor for Scatter<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.val().shape();
        let n = shape.num_elements();
        let values = self.flat[self.at..self.at + n].to_vec();
        self.at += n;
        self.out.register(param.id, Tensor::<D>::from_data(TensorData::new(values, shape), self.device));
    }
}
