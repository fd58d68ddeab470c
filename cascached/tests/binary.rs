//! The `cascached` executable: options, exit codes, and serving on the port it is given.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cascached() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cascached"))
}

/// Kills the server when the test ends, even on failure.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_options_exit_with_a_message() {
    for (args, message) in [
        (&["-x"][..], "unknown option -x"),
        (&["-p", "port"], "invalid number"),
        (&["-t", "0"], "at least 1"),
        (&["-U", "11211"], "UDP is not supported"),
        (&["-I", "10"], "cannot be less than 1024"),
    ] {
        let output = cascached().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn help_and_version() {
    let output = cascached().arg("-h").output().unwrap();
    assert!(output.status.success());
    let usage = String::from_utf8_lossy(&output.stdout);
    for option in [
        "-p, --port",
        "-l, --listen",
        "-m, --memory-limit",
        "-c, --conn-limit",
        "-t, --threads",
        "-I, --max-item-size",
        "-U, --udp-port",
    ] {
        assert!(usage.contains(option), "{option} missing from {usage}");
    }
    let output = cascached().arg("-V").output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains(cascached::session::VERSION));
}

#[test]
fn serves_on_the_given_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Running(
        cascached()
            .args([
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-t",
                "2",
                "-m",
                "16",
                "-c",
                "8",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("server not listening: {error}"),
        }
    };
    stream
        .write_all(b"set k 0 0 2\r\nhi\r\nget k\r\nquit\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n");
}

#[test]
fn a_port_in_use_is_an_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = cascached().args(["-p", &port]).output().unwrap();
    assert_eq!(output.status.code(), Some(71));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
}
