//! TLS: a server with a certificate serves the clients that trust its CA and no others.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// Makes a CA and a certificate for localhost signed by it with `openssl`; none without it.
fn test_certificates(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let made = openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tokenlake test CA",
            ],
        ]
        .concat(),
    ) && openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    ) && openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    made.then(|| {
        (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        )
    })
}

mod needs_openssl {
    use super::*;

    #[test]
    #[ignore = "needs openssl to make test certificates (tests/run.sh runs it where openssl is)"]
    fn tls_serves_clients_that_trust_its_ca_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = test_certificates(dir.path()).expect(
            "this test needs openssl to make its certificates (tests/run.sh skips it without)",
        );
        let lake = sample_lake(dir.path());
        let config = dir.path().join("tls.toml");
        let health = format!("127.0.0.1:{}", crate::serve::free_port());
        std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nopen = true\nhealth_listen = {health:?}\n[lakes]\nsample = {:?}\n[tls]\ncert = {:?}\nkey = {:?}\n",
            lake.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
        let mut child = tokenlake()
            .args(["serve", "--config", config.to_str().unwrap()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .split("https://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no https address in {first:?}"))
            .to_string();
        let url = format!("https://localhost:{port}");
        let r = ziya2();
        let args = |extra: &[&str]| {
            let mut a = vec![
                "stream",
                r.to_str().unwrap(),
                "--server",
                &url,
                "--lake",
                "sample",
                "--steps",
                "2",
                "--checksums",
            ];
            a.extend_from_slice(extra);
            a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };
        let trusted = tokenlake()
            .args(args(&["--ca-cert", ca.to_str().unwrap()]))
            .output()
            .unwrap();
        let untrusted = tokenlake().args(args(&[])).output().unwrap();
        // Probes that cannot speak TLS ask plaintext health on its own address.
        crate::serve::assert_serving(&crate::serve::runtime(), &format!("http://{health}"));
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            trusted.status.success(),
            "{}",
            String::from_utf8_lossy(&trusted.stderr)
        );
        let local = run_ok(&[
            "stream",
            r.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
            "--steps",
            "2",
            "--checksums",
        ]);
        assert_eq!(String::from_utf8(trusted.stdout).unwrap(), local);
        assert!(!untrusted.status.success());
        let err = String::from_utf8_lossy(&untrusted.stderr);
        assert!(err.contains("certificate"), "{err}");
    }
}
