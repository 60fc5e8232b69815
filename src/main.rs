//! The `fawkes` binary.

fn main() {
    eprintln!("fawkes: the serve command arrives with the binary issue");
}
