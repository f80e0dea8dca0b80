//! An S3 server on a loopback port, for measuring Skald with its segments
//! in object storage (`benches/object-storage/run.sh`): the same in-process
//! `s3s-fs` server the tests use, over a temporary directory, with one
//! bucket (`logs`) and the tests' credentials. Prints its endpoint and
//! serves until killed.
//!
//! `cargo run --release -p skald-store --example s3_server`

#[path = "../tests/common/s3.rs"]
mod s3;

fn main() {
    let server = s3::S3Server::start();
    println!(
        "{} {} {} {}",
        server.endpoint,
        s3::BUCKET,
        s3::ACCESS_KEY,
        s3::SECRET_KEY
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
