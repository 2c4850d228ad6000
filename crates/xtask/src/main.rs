//! `cargo xtask`: docs, test, demo, bench. (Being written.)

fn main() -> anyhow::Result<()> {
    let _ = (mem_estimate::command(), chunk_plan::command());
    anyhow::bail!("xtask: not written yet")
}
