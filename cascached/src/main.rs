fn main() {
    eprintln!("cascached: not built yet");
    std::process::exit(1);
}
