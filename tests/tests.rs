//! percore's integration tests: one binary, one module per area.

// Mechanical rules of the code base (headers, file length, dependency direction).
mod tidy;
// The daemon end to end over real sockets.
mod serve;
// A new user's first hour: defaults, listen addresses, statuses, logs.
mod first_hour;
// The pages for browsers in headless Chromium.
mod browser;
// The README's quick start, step by step.
mod walkthrough;
// Connections spread over shards by handing them over the mesh.
mod balance;
// PUT and DELETE: durability, preconditions, races, cut uploads, restarts.
mod store;
// The load generator.
mod bench;
// Disk and socket faults injected through the io seam.
mod faults;
// Malformed, smuggling and path-escaping requests.
mod hostile;
// SIGKILL at random moments under concurrent writes.
mod crash;
// File-system shutdowns (power loss) on XFS and ext4 loop images.
mod powerloss;
// Slow and greedy clients.
mod slow;
// A bounded mixed load, then a graceful stop under writes.
mod soak;
// HTTPS: clients, certificates, resumption, reloads, hostile TLS.
mod tls;
// The deployment files (nginx, seccomp, systemd).
mod deploy;
// The container image under Docker.
mod container;
// Several nodes behind HAProxy.
mod cluster;
// HTTPS under load, slow readers and SIGKILL.
mod tls_load;
// The S3 API through boto3, aws-cli, rclone, s3cmd, restic and s3fs; hostile requests; kill -9.
mod s3;
// Shared helpers: start the daemon, speak HTTP.
mod util;
