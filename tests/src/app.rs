//! The lab's demo application server (`src/bin/lab-app.rs`) running in the app namespace:
//! the web servers proxy `/app` to it, and it reaches the databases by the names foobar's
//! DNS answers.

use std::path::Path;

use crate::{
    mariadb::APP_PASSWORD,
    netns::{Netns, Spawned},
    nginx::wait_listening,
    topology::APP,
};

/// The port the app listens on (the web servers proxy `/app` there).
pub const PORT: u16 = 8080;

/// Starts `binary` (the built `lab-app`) in `ns` on `APP:PORT`; ended, by its pid, on drop.
pub fn start(ns: &Netns, binary: &Path) -> Spawned {
    let dir = ns.scratch("app");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("app dir");
    let password = dir.join("db.pass");
    std::fs::write(&password, APP_PASSWORD).expect("app password file");
    let listen = format!("{APP}:{PORT}");
    let argv = [binary.to_str().expect("UTF-8 path"), &listen, password.to_str().expect("UTF-8 path")];
    let process = ns.spawn(&argv, &dir.join("app.log"));
    wait_listening(ns, PORT);
    process
}
