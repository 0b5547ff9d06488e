//! Bearer tokens and roles. Every tokenlake service is wrapped in an interceptor that asks for
//! a role: `reader` may stream, plan, read the catalog and query; `admin` may also write. An
//! open server lets every call through (it listens on loopback unless told otherwise). Health
//! and reflection carry no data and stay open, so probes and generic tools need no token.

use std::sync::Arc;

use serde::Deserialize;
use tonic::{Request, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

/// Who may call: nobody is checked (open), or a token must map to a role.
#[derive(Clone)]
pub struct Auth {
    tokens: Option<Arc<Vec<(String, String, Role)>>>,
}

impl Auth {
    pub fn open() -> Auth {
        Auth { tokens: None }
    }

    /// `tokens` are (name, secret, role).
    pub fn with_tokens(tokens: Vec<(String, String, Role)>) -> Auth {
        Auth {
            tokens: Some(Arc::new(tokens)),
        }
    }

    /// The interceptor of a service that needs `role`.
    pub fn require(
        &self,
        role: Role,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
        let auth = self.clone();
        move |mut request: Request<()>| {
            let caller = auth.check(&request, role)?;
            request.extensions_mut().insert(caller);
            Ok(request)
        }
    }

    /// Who is calling, when they may.
    fn check(&self, request: &Request<()>, needed: Role) -> Result<Caller, Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(Caller(OPEN.into()));
        };
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no bearer token: send `authorization: Bearer <token>` (TOKENLAKE_TOKEN for the clients)",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header is not `Bearer <token>`")
            })?
            .trim();
        // Every token is compared in full, so timing does not tell which prefix matched.
        let mut found = None;
        for (name, token, role) in tokens.iter() {
            if same_bytes(token.as_bytes(), secret.as_bytes()) {
                found = Some((name, *role));
            }
        }
        let (name, role) = found.ok_or_else(|| Status::unauthenticated("unknown bearer token"))?;
        if role < needed {
            return Err(Status::permission_denied(format!(
                "token {name:?} has role {}; this call needs {}",
                role.name(),
                needed.name()
            )));
        }
        Ok(Caller(name.clone()))
    }
}

/// The caller of a request, as its interceptor found it: the name of its bearer token (never
/// the secret), or [`OPEN`] on a server without tokens. Limits per token count by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller(pub String);

/// The caller of every request to an open server.
pub const OPEN: &str = "(open)";

impl Caller {
    /// The caller a request's interceptor recorded; services reached without one (tests,
    /// benchmarks that serve in-process) count as open.
    pub fn of<T>(request: &Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller(OPEN.into()))
    }
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(token: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        r
    }

    #[test]
    fn roles_gate_calls() {
        let auth = Auth::with_tokens(vec![
            (
                "trainer".into(),
                "reader-secret-0123456789".into(),
                Role::Reader,
            ),
            ("ops".into(), "admin-secret-0123456789".into(), Role::Admin),
        ]);
        let read = auth.require(Role::Reader);
        let write = auth.require(Role::Admin);
        let allowed = read(request(Some("reader-secret-0123456789"))).unwrap();
        assert_eq!(Caller::of(&allowed), Caller("trainer".into()));
        assert!(read(request(Some("admin-secret-0123456789"))).is_ok());
        assert!(write(request(Some("admin-secret-0123456789"))).is_ok());
        let denied = write(request(Some("reader-secret-0123456789"))).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("trainer"), "{}", denied.message());
        assert_eq!(
            read(request(None)).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            read(request(Some("reader-secret-012345678")))
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn an_open_server_checks_nothing() {
        let allowed = Auth::open().require(Role::Admin)(request(None)).unwrap();
        assert_eq!(Caller::of(&allowed).0, OPEN);
    }
}
