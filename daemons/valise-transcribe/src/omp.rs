//! How whisper.cpp's OpenMP threads wait at each step of the model. libgomp reads its
//! settings once, when it is loaded (before `main`), so they must be in the environment: the
//! unit sets `GOMP_SPINCOUNT`, the engine started any other way starts itself again with it
//! ([`ensure_waits`]), and the benchmark gives its Valise child the same ([`configured`]).

/// How long the threads spin at each step before they sleep (libgomp's `GOMP_SPINCOUNT`).
/// ggml's own pool only spins: on a busy box the waiting thread burns the time slice of the one
/// it waits for. Sleeping at once (`OMP_WAIT_POLICY=passive`) costs a wake-up per step when the
/// box is quiet; a short spin of 300 rounds (a few microseconds) is as good as passive under
/// load and 1.2-1.4x faster when quiet; 1,000 and more lose under load
/// (tests/bench-transcribe/README.md, "Long recordings").
pub const GOMP_SPINCOUNT: &str = "300";

/// Whether the environment already says how the threads wait: the spin count, or a wait policy
/// set to measure another. Either is left alone.
pub fn configured() -> bool {
    std::env::var_os("GOMP_SPINCOUNT").is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some()
}

/// Unless [`configured`], starts this program again with `GOMP_SPINCOUNT` (same process id,
/// same arguments). Call first thing in `main`. If the exec fails, says so and goes on as it is
/// (slower on a busy box).
pub fn ensure_waits() {
    use std::os::unix::process::CommandExt;
    if configured() {
        return;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "valise-transcribe".into());
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
        .exec();
    eprintln!("valise-transcribe: could not restart with GOMP_SPINCOUNT={GOMP_SPINCOUNT}: {err}");
}
