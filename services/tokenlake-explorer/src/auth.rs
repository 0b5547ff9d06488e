//! Who may use the explorer: nobody is checked (an open explorer, on loopback, as `serve
//! --open`), or a token of the server's must be given once at sign-in. A sign-in creates a
//! session whose random id lives in an HttpOnly, SameSite=Strict cookie: the token itself never
//! reaches the page's script, and another site cannot make the browser send the cookie. Scripts
//! may also send the token as `Authorization: Bearer`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde::Serialize;

/// What a token may do here, as in the gRPC services: a reader reads, an admin also tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Admin,
}

/// Sessions last this long without a new sign-in.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; the oldest goes first beyond it.
const MAX_SESSIONS: usize = 10_000;

pub const COOKIE: &str = "tokenlake_session";

/// Who may call.
#[derive(Clone)]
pub enum Access {
    /// Everyone, as an admin: a loopback explorer of one's own lakes.
    Open,
    /// (name, secret, role) of each token.
    Tokens(Vec<(String, String, Role)>),
}

/// A signed-in caller.
#[derive(Debug, Clone, Serialize)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

pub struct Sessions {
    access: Access,
    sessions: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl Sessions {
    pub fn new(access: Access) -> Sessions {
        Sessions {
            access,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.access, Access::Open)
    }

    /// The caller of a request: by its session cookie or bearer token.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let tokens = match &self.access {
            Access::Open => {
                return Some(Caller {
                    name: "open".into(),
                    role: Role::Admin,
                });
            }
            Access::Tokens(tokens) => tokens,
        };
        if let Some(secret) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return find(tokens, secret);
        }
        let id = session_cookie(headers)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(&id) {
            Some((caller, since)) if since.elapsed() < SESSION_TTL => Some(caller.clone()),
            Some(_) => {
                sessions.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Signs in with `secret`: a new session's id, or None for a token the server does not know.
    pub fn sign_in(&self, secret: &str) -> Option<(String, Caller)> {
        let Access::Tokens(tokens) = &self.access else {
            return None;
        };
        let caller = find(tokens, secret)?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, (_, since)| since.elapsed() < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, (_, since))| *since)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), (caller.clone(), Instant::now()));
        Some((id, caller))
    }

    pub fn sign_out(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The token whose secret is `secret`, compared in constant time.
fn find(tokens: &[(String, String, Role)], secret: &str) -> Option<Caller> {
    let mut found = None;
    for (name, expected, role) in tokens {
        if constant_time_eq(expected.as_bytes(), secret.as_bytes()) {
            found = Some(Caller {
                name: name.clone(),
                role: *role,
            });
        }
    }
    found
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_session_is_its_cookie_and_ends_at_sign_out() {
        let s = Sessions::new(Access::Tokens(vec![
            ("ann".into(), "reader-secret-123".into(), Role::Reader),
            ("bob".into(), "admin-secret-456".into(), Role::Admin),
        ]));
        assert!(s.sign_in("wrong").is_none());
        let (id, caller) = s.sign_in("reader-secret-123").unwrap();
        assert_eq!((caller.name.as_str(), caller.role), ("ann", Role::Reader));
        let cookie = format!("other=1; {COOKIE}={id}");
        let with = headers(&[("cookie", &cookie)]);
        assert_eq!(s.caller(&with).unwrap().role, Role::Reader);
        assert!(
            s.caller(&headers(&[("cookie", "tokenlake_session=forged")]))
                .is_none()
        );
        assert!(s.caller(&HeaderMap::new()).is_none());
        let bearer = headers(&[("authorization", "Bearer admin-secret-456")]);
        assert_eq!(s.caller(&bearer).unwrap().role, Role::Admin);
        s.sign_out(&with);
        assert!(s.caller(&with).is_none());
    }
}
