// Re-exports rb-sys's link settings (and its `ruby_*` cfg flags), so that a plain `cargo build` of
// this crate links like the RubyGems Cargo builder's build does.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rb_sys_env::activate()?;
    Ok(())
}
