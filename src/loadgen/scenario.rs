//! What the virtual users send: the endpoints, the endpoint mixes, the consumers, the real
//! tokens `/tokens/validate` needs, and the pre-rendered request bytes for every
//! (endpoint, consumer) pair.
//!
//! The mixes are fixed, repeating sequences (not random draws) so two runs send the same
//! requests in the same proportions and compare fairly. Network I/O here is limited to
//! fetching tokens before a run, through `client::fetch`.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::loadgen::client::{self, ClientError, Target};

/// A route the load generator can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Tokens,
    Validate,
    Health,
    /// `/health/live`: no dependency work, so it measures the HTTP path (and this client).
    Live,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Tokens,
        Endpoint::Validate,
        Endpoint::Health,
        Endpoint::Live,
    ];

    pub fn route(self) -> &'static str {
        match self {
            Endpoint::Tokens => "/tokens",
            Endpoint::Validate => "/tokens/validate",
            Endpoint::Health => "/health",
            Endpoint::Live => "/health/live",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn needs_consumer(self) -> bool {
        matches!(self, Endpoint::Tokens | Endpoint::Validate)
    }
}

/// Which endpoints a run calls, and in what proportions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    Only(Endpoint),
    /// 70 % /tokens, 20 % /health, 10 % /tokens/validate.
    Mixed,
}

/// One period of the mixed sequence: 7 tokens, 2 health, 1 validate, interleaved so any
/// window of a few requests is already close to the target shares.
const MIXED: [Endpoint; 10] = [
    Endpoint::Tokens,
    Endpoint::Health,
    Endpoint::Tokens,
    Endpoint::Tokens,
    Endpoint::Validate,
    Endpoint::Tokens,
    Endpoint::Tokens,
    Endpoint::Health,
    Endpoint::Tokens,
    Endpoint::Tokens,
];

impl Mix {
    /// `health`, `live`, `tokens`, `validate`, `mixed` or `all` (the same as `mixed`).
    pub fn parse(text: &str) -> Option<Mix> {
        Some(match text {
            "health" => Mix::Only(Endpoint::Health),
            "live" => Mix::Only(Endpoint::Live),
            "tokens" => Mix::Only(Endpoint::Tokens),
            "validate" => Mix::Only(Endpoint::Validate),
            "mixed" | "all" => Mix::Mixed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mix::Only(Endpoint::Health) => "health",
            Mix::Only(Endpoint::Live) => "live",
            Mix::Only(Endpoint::Tokens) => "tokens",
            Mix::Only(Endpoint::Validate) => "validate",
            Mix::Mixed => "mixed",
        }
    }

    /// The route a profile of this mix is about; `mixed` for the mix.
    pub fn route(self) -> &'static str {
        match self {
            Mix::Only(endpoint) => endpoint.route(),
            Mix::Mixed => "mixed",
        }
    }

    fn sequence(self) -> &'static [Endpoint] {
        match self {
            Mix::Only(Endpoint::Tokens) => &[Endpoint::Tokens],
            Mix::Only(Endpoint::Validate) => &[Endpoint::Validate],
            Mix::Only(Endpoint::Health) => &[Endpoint::Health],
            Mix::Only(Endpoint::Live) => &[Endpoint::Live],
            Mix::Mixed => &MIXED,
        }
    }

    pub fn uses(self, endpoint: Endpoint) -> bool {
        self.sequence().contains(&endpoint)
    }

    pub fn needs_consumers(self) -> bool {
        self.sequence().iter().any(|e| e.needs_consumer())
    }
}

/// A Kong consumer as the service's headers name it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Consumer {
    pub id: String,
    pub username: String,
}

/// The consumers `kong-sim` seeds: `test-consumer-001` with id
/// `00000000-0000-4000-8000-000000000001`, and so on.
pub fn seeded_consumers(count: usize) -> Vec<Consumer> {
    (1..=count)
        .map(|i| Consumer {
            id: format!("00000000-0000-4000-8000-{i:012}"),
            username: format!("test-consumer-{i:03}"),
        })
        .collect()
}

/// Why a scenario could not be prepared.
#[derive(Debug)]
pub enum ScenarioError {
    ConsumerFile(String),
    Token {
        consumer: String,
        status: Option<u16>,
        detail: String,
        source: Option<ClientError>,
    },
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::ConsumerFile(why) => write!(f, "--consumer-file: {why}"),
            ScenarioError::Token {
                consumer,
                status: Some(status),
                detail,
                ..
            } => write!(
                f,
                "cannot get a token for consumer {consumer}: /tokens answered {status} {detail}"
            ),
            ScenarioError::Token { consumer, .. } => {
                write!(f, "cannot get a token for consumer {consumer}")
            }
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScenarioError::Token {
                source: Some(err), ..
            } => Some(err),
            _ => None,
        }
    }
}

/// Reads `[{"id", "username"}, ...]`; at least one entry, no empty fields.
pub fn load_consumers(path: &Path) -> Result<Vec<Consumer>, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ScenarioError::ConsumerFile(format!("cannot read {}: {err}", path.display()))
    })?;
    let consumers: Vec<Consumer> = serde_json::from_str(&text).map_err(|err| {
        ScenarioError::ConsumerFile(format!(
            "{}: expected a JSON array of {{\"id\", \"username\"}}: {err}",
            path.display()
        ))
    })?;
    if consumers.is_empty() {
        return Err(ScenarioError::ConsumerFile(format!(
            "{} lists no consumers",
            path.display()
        )));
    }
    if let Some(bad) = consumers
        .iter()
        .find(|c| c.id.trim().is_empty() || c.username.trim().is_empty())
    {
        return Err(ScenarioError::ConsumerFile(format!(
            "{}: consumer {:?} has an empty id or username",
            path.display(),
            bad.id
        )));
    }
    Ok(consumers)
}

/// Gets one real token per consumer through `GET /tokens`.
pub fn fetch_tokens(target: &Target, consumers: &[Consumer]) -> Result<Vec<String>, ScenarioError> {
    #[derive(Deserialize)]
    struct Issued {
        access_token: String,
    }
    consumers
        .iter()
        .map(|consumer| {
            let failed = |status, detail: String, source| ScenarioError::Token {
                consumer: consumer.username.clone(),
                status,
                detail,
                source,
            };
            let (status, body) = client::fetch(
                target,
                "GET",
                Endpoint::Tokens.route(),
                &[
                    ("X-Consumer-ID", &consumer.id),
                    ("X-Consumer-Username", &consumer.username),
                ],
            )
            .map_err(|err| failed(None, String::new(), Some(err)))?;
            if status != 200 {
                let detail: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                return Err(failed(Some(status), detail, None));
            }
            serde_json::from_slice::<Issued>(&body)
                .map(|issued| issued.access_token)
                .map_err(|err| failed(Some(status), format!("unreadable body: {err}"), None))
        })
        .collect()
}

/// Pre-rendered request bytes: `[endpoint][consumer]` (one entry for consumer-less routes).
pub struct Requests {
    bytes: Vec<Vec<Vec<u8>>>,
    mix: Mix,
}

impl Requests {
    /// `tokens` holds one token per consumer when the mix validates, else may be empty.
    pub fn render(
        target: &Target,
        mix: Mix,
        consumers: &[Consumer],
        tokens: &[String],
    ) -> Requests {
        let bytes = Endpoint::ALL
            .iter()
            .map(|&endpoint| {
                if !mix.uses(endpoint) {
                    return Vec::new();
                }
                if !endpoint.needs_consumer() {
                    return vec![target.render_get(endpoint.route(), &[])];
                }
                consumers
                    .iter()
                    .enumerate()
                    .map(|(i, consumer)| {
                        let mut headers = vec![
                            ("X-Consumer-ID", consumer.id.as_str()),
                            ("X-Consumer-Username", consumer.username.as_str()),
                        ];
                        let bearer;
                        if endpoint == Endpoint::Validate {
                            bearer = format!("Bearer {}", tokens[i]);
                            headers.push(("Authorization", &bearer));
                        }
                        target.render_get(endpoint.route(), &headers)
                    })
                    .collect()
            })
            .collect();
        Requests { bytes, mix }
    }

    /// The `n`-th request of virtual user `vu`: the mix position and the consumer both
    /// advance with `n`, offset by `vu` so users do not move in lockstep.
    pub fn nth(&self, vu: usize, n: u64) -> (Endpoint, &[u8]) {
        let sequence = self.mix.sequence();
        let step = n as usize;
        let endpoint = sequence[(vu.wrapping_mul(3).wrapping_add(step)) % sequence.len()];
        let choices = &self.bytes[endpoint.index()];
        let consumer = vu.wrapping_mul(7).wrapping_add(step) % choices.len();
        (endpoint, &choices[consumer])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::parse("http://127.0.0.1:9").unwrap()
    }

    #[test]
    fn mixed_sequence_keeps_its_proportions() {
        let consumers = seeded_consumers(3);
        let tokens = vec!["a.b.c".to_owned(); 3];
        let requests = Requests::render(&target(), Mix::Mixed, &consumers, &tokens);
        for vu in [0, 1, 7] {
            for window in [10u64, 100, 1000] {
                let mut counts = [0u64; 4];
                for n in 0..window {
                    counts[requests.nth(vu, n).0.index()] += 1;
                }
                assert_eq!(
                    counts,
                    [window * 7 / 10, window / 10, window * 2 / 10, 0],
                    "vu {vu}, {window} requests"
                );
            }
        }
        // Deterministic: the same position gives the same bytes.
        assert_eq!(requests.nth(4, 17), requests.nth(4, 17));
    }

    #[test]
    fn requests_carry_consumer_headers_and_tokens() {
        let consumers = seeded_consumers(2);
        let tokens = vec!["t1".to_owned(), "t2".to_owned()];
        let requests = Requests::render(
            &target(),
            Mix::Only(Endpoint::Validate),
            &consumers,
            &tokens,
        );
        let seen: Vec<String> = (0..2)
            .map(|n| String::from_utf8(requests.nth(0, n).1.to_vec()).unwrap())
            .collect();
        assert!(seen[0].starts_with("GET /tokens/validate HTTP/1.1\r\n"));
        assert!(seen[0].contains("X-Consumer-ID: 00000000-0000-4000-8000-000000000001\r\n"));
        assert!(seen[0].contains("X-Consumer-Username: test-consumer-001\r\n"));
        assert!(seen[0].contains("Authorization: Bearer t1\r\n"));
        assert!(seen[1].contains("Authorization: Bearer t2\r\n"));
        let health = Requests::render(&target(), Mix::Only(Endpoint::Health), &[], &[]);
        assert_eq!(health.nth(5, 9).0, Endpoint::Health);
    }

    #[test]
    fn mixes_parse() {
        assert_eq!(Mix::parse("all"), Some(Mix::Mixed));
        assert_eq!(Mix::parse("validate"), Some(Mix::Only(Endpoint::Validate)));
        assert_eq!(Mix::parse("Health"), None);
        assert!(Mix::Mixed.needs_consumers());
        assert!(!Mix::Only(Endpoint::Live).needs_consumers());
    }
}
