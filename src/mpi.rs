//! The [`Collective`] over MPI (feature `mpi`): `mpirun -np R cnn-as-mlp train …` spreads each batch's
//! shards over the R processes ([`crate::distributed`]).
//!
//! MPI has no timeout on a collective: if a rank dies, the others could wait forever. A watchdog thread
//! ends the process with a clear error when one all-gather has waited longer than the timeout
//! (the timeout given to [`Mpi::init`]; the command reads it from `CNN_AS_MLP_MPI_TIMEOUT`, default 120 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::traits::CommunicatorCollectives;

use crate::distributed::Collective;

/// MPI's world communicator with a watchdog. Keep it alive for the whole job (dropping the universe
/// finalizes MPI).
pub struct Mpi {
    _universe: Universe,
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Milliseconds since `epoch` at which the current all-gather began; 0 when none is running.
    since: Arc<AtomicU64>,
    /// All-gathers so far, nanoseconds spent in them, f32 values sent.
    calls: AtomicU64,
    nanos: AtomicU64,
    sent: AtomicU64,
}

// The communicator is used by one thread at a time (MPI initialised as `Serialized`).
// SAFETY: MPI is initialised with `Threading::Serialized`, so any thread may make MPI calls, and the handles
// `Mpi` holds (universe and communicator) are plain values not tied to the thread that made them. This relies
// on the crate dropping the `Mpi` (which finalizes MPI) on the thread that initialised it, as the command does;
// the type does not enforce it.
unsafe impl Send for Mpi {}
// SAFETY: `Serialized` allows MPI calls from several threads only one at a time; the training loop and the
// command make every collective call (`all_gather`, `flags`) from one thread, which is what this relies on.
// Nothing in the type enforces it: two threads calling `all_gather` on a shared `Mpi` at once would break it.
unsafe impl Sync for Mpi {}

impl Mpi {
    /// Initialises MPI, or `None` when it cannot be (already initialised). A rank whose all-gather waits more
    /// than `timeout` (another rank has probably died) ends the process with one error line.
    pub fn init(timeout: Duration) -> Option<Arc<Mpi>> {
        let (universe, _) = ::mpi::initialize_with_threading(::mpi::Threading::Serialized)?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let timeout = timeout.as_secs().max(1);
        let since = Arc::new(AtomicU64::new(0));
        let watched = since.clone();
        let start = Instant::now();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let t = watched.load(Ordering::SeqCst);
                let now = start.elapsed().as_millis() as u64;
                if t != 0 && now.saturating_sub(t) > timeout * 1000 {
                    eprintln!(
                        "error: MPI rank {rank} of {size}: an all-gather has waited more than {timeout} s (CNN_AS_MLP_MPI_TIMEOUT); another rank has probably died; exiting"
                    );
                    std::process::exit(2);
                }
            }
        });
        let mpi = Mpi {
            _universe: universe,
            world,
            rank,
            size,
            since,
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        };
        mpi.since.store(0, Ordering::SeqCst);
        START.get_or_init(|| start);
        Some(Arc::new(mpi))
    }
}

impl Mpi {
    /// Every rank's `flag`, in rank order, without the watchdog: a barrier where ranks may wait long (a
    /// sweep's ranks finish their runs at different times).
    pub fn flags(&self, flag: f32) -> Vec<f32> {
        let mut all = vec![0.0f32; self.size];
        self.world.all_gather_into(&flag, &mut all[..]);
        all
    }

    /// (all-gathers, mean milliseconds per all-gather, mean bytes sent by this rank per all-gather).
    pub fn stats(&self) -> (u64, f64, f64) {
        let n = self.calls.load(Ordering::Relaxed);
        let d = n.max(1) as f64;
        (n, self.nanos.load(Ordering::Relaxed) as f64 / 1e6 / d, self.sent.load(Ordering::Relaxed) as f64 / d)
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_gather(&self, mine: &[f32], all: &mut [f32]) -> Result<(), String> {
        if all.len() != mine.len() * self.size {
            return Err(format!("all-gather of {} values into {} for {} ranks", mine.len(), all.len(), self.size));
        }
        let start = START.get().expect("Mpi::init ran");
        self.since.store(start.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
        let t = Instant::now();
        self.world.all_gather_into(mine, all);
        self.nanos.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(mine.len() as u64 * 4, Ordering::Relaxed);
        self.since.store(0, Ordering::SeqCst);
        Ok(())
    }
}
