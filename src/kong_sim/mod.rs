//! Kong Admin API simulator (placeholder until the simulator lands).

use std::fmt;

pub struct SimOptions;

impl SimOptions {
    pub fn embedded() -> SimOptions {
        SimOptions
    }
}

pub struct SeededConsumer {
    pub id: String,
    pub username: String,
    pub key: String,
    pub secret: String,
}

pub struct KongSim;

impl KongSim {
    pub fn url(&self) -> String {
        String::new()
    }
    pub fn consumers(&self) -> Vec<SeededConsumer> {
        Vec::new()
    }
    pub fn shutdown(self) {}
}

#[derive(Debug)]
pub struct SimError;

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("kong simulator not built yet")
    }
}

impl std::error::Error for SimError {}

pub fn start(_options: SimOptions) -> Result<KongSim, SimError> {
    Err(SimError)
}
